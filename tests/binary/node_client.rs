//! `examples/pos_client.mjs`, a client in a second language written from
//! docs/pos-protocol.md alone (Node.js, standard library only), against
//! `tillpay dev`: a sale, a sale that waits on the phone, a cancel while
//! waiting for a scan, a refund followed to its end, and a daemon killed
//! with a sale in flight that the client follows to its final status.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::dev::DevTill;

/// `node`, or `None` off CI when it is missing (`.ci/run` installs it).
fn node() -> Option<&'static str> {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("node");
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "no node for the Node.js client test: CI must run it (bash .ci/run installs nodejs)"
        );
    }
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"notice: Node.js client test skipped: no node on PATH\n",
    );
    None
}

/// Starts the example client with `args` after the socket, `input` on stdin.
async fn client(node: &str, dev: &DevTill, cmd: &str, rest: &[&str], input: &str) -> Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pos_client.mjs");
    let mut child = Command::new(node)
        .arg(script)
        .arg(cmd)
        .arg("--socket")
        .arg(&dev.socket)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).await.expect("stdin");
    }
    child
}

/// Waits for the client; its last stdout line as JSON, its exit code and
/// its progress (stderr).
async fn outcome(child: Child) -> (Value, Option<i32>, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client ends")
        .expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("null");
    let v = serde_json::from_str(last).unwrap_or(Value::Null);
    (
        v,
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn run(
    node: &str,
    dev: &DevTill,
    cmd: &str,
    rest: &[&str],
    input: &str,
) -> (Value, Option<i32>, String) {
    outcome(client(node, dev, cmd, rest, input).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_client_from_the_protocol_page_works_against_tillpay_dev() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = DevTill::start(&dir.path().join("dev")).await;

    // A sale, and one that waits on the phone.
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 8001);
    let (p, rc, _) = run(
        node,
        &dev,
        "charge",
        &["--order", "N1", "--amount", "1000", "--typed"],
        &code,
    )
    .await;
    assert_eq!((p["status"].as_str(), rc), (Some("paid"), Some(0)), "{p}");
    let code = Behaviour::ConfirmsAfter(3).code(Provider::Alipay, 8002);
    let (p, rc, shown) = run(
        node,
        &dev,
        "charge",
        &["--order", "N2", "--amount", "500", "--typed"],
        &code,
    )
    .await;
    assert_eq!((p["status"].as_str(), rc), (Some("paid"), Some(0)), "{p}");
    assert!(shown.contains("user_paying"), "progress: {shown}");

    // A cancel while the sale waits for a scan: both calls end cancelled,
    // and the Payment says the cashier did it.
    let waiting = client(
        node,
        &dev,
        "charge",
        &["--order", "N3", "--amount", "300"],
        "",
    )
    .await;
    let mut armed = false;
    for _ in 0..100 {
        let (s, _, _) = run(node, &dev, "status", &[], "").await;
        if s["waiting_order"] == "N3" {
            armed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(armed, "N3 never waited for a scan");
    let (c, rc, _) = run(node, &dev, "cancel", &["--order", "N3"], "").await;
    assert_eq!(
        (c["status"].as_str(), rc),
        (Some("cancelled"), Some(0)),
        "{c}"
    );
    let (p, rc, _) = outcome(waiting).await;
    assert_eq!(
        (p["status"].as_str(), rc),
        (Some("cancelled"), Some(1)),
        "{p}"
    );
    assert_eq!(p["error"]["code"], "CANCELLED_BY_CASHIER", "{p}");

    // A WeChat refund is accepted first, and followed to its end.
    let (r, rc, shown) = run(
        node,
        &dev,
        "refund",
        &["--order", "N1", "--refund-no", "R1", "--amount", "400"],
        "",
    )
    .await;
    assert_eq!(
        (r["status"].as_str(), rc),
        (Some("refunded"), Some(0)),
        "{r}"
    );
    assert!(shown.contains("processing"), "accepted first: {shown}");

    // The daemon is killed with a sale in flight; the client follows it.
    let code = Behaviour::ConfirmsAfter(9).code(Provider::Wechat, 8005);
    let charging = client(
        node,
        &dev,
        "charge",
        &["--order", "N5", "--amount", "700", "--typed"],
        &code,
    )
    .await;
    let mut in_flight = false;
    for _ in 0..100 {
        let (s, _, _) = run(node, &dev, "status", &[], "").await;
        if s["in_flight_orders"]
            .as_array()
            .is_some_and(|a| a.contains(&"N5".into()))
        {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(in_flight, "N5 never in flight");
    tokio::time::sleep(Duration::from_millis(500)).await;
    dev.command("crash").await;
    let (_, rc, _) = outcome(charging).await;
    assert_eq!(rc, Some(2), "the charge lost its connection");
    let (p, _, _) = run(node, &dev, "watch", &["--order", "N5"], "").await;
    assert!(
        ["paid", "revoked"].contains(&p["status"].as_str().unwrap_or("")),
        "followed to a final status after the restart: {p}"
    );
    dev.quit().await;
}
