//! The `tillpay` client commands against a running daemon: output and
//! exit codes (docs/operations.md).

use crate::common;

use std::process::Output;

use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

async fn tillpay(args: Vec<String>) -> Output {
    tillpay_with_input(args, "").await
}

/// Runs `tillpay` with `input` on its standard input.
async fn tillpay_with_input(args: Vec<String>, input: &str) -> Output {
    let input = input.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tillpay"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tillpay runs");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        child.wait_with_output().expect("tillpay ends")
    })
    .await
    .expect("join")
}

fn args(socket: &std::path::Path, rest: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
    v.push("--socket".into());
    v.push(socket.display().to_string());
    v
}

#[tokio::test]
async fn charge_paid_exits_0_with_a_clear_line() {
    let till = common::TestTill::start(vec![], 0o600).await;
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 11);
    let out = tillpay_with_input(
        args(
            &till.socket,
            &["charge", "--amount", "12.34", "--order", "C1", "--typed"],
        ),
        &code,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("C1 PAID ¥12.34 wechat"), "{stdout}");
    assert!(!stdout.contains(&code) && !String::from_utf8_lossy(&out.stderr).contains(&code));
    let q = tillpay(args(&till.socket, &["query", "C1", "--json"])).await;
    let v: serde_json::Value = serde_json::from_slice(&q.stdout).expect("json");
    assert_eq!(
        v["amount"], 1234,
        "yuan on the command line became exact fen"
    );
    assert_eq!(v["status"], "paid");
}

#[tokio::test]
async fn charge_failed_exits_1_and_json_prints_the_payment() {
    let till = common::TestTill::start(vec![], 0o600).await;
    let code = Behaviour::InsufficientFunds.code(Provider::Alipay, 12);
    let out = tillpay_with_input(
        args(
            &till.socket,
            &[
                "charge", "--amount", "5", "--order", "C2", "--typed", "--json",
            ],
        ),
        &code,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], "failed");
    assert_eq!(v["amount"], 500);
    assert_eq!(v["error"]["code"], "NOTENOUGH");
}

#[tokio::test]
async fn cancel_exits_0_only_when_no_money_is_kept() {
    let till = common::TestTill::start(vec![], 0o600).await;
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 13);
    let paid = tillpay_with_input(
        args(
            &till.socket,
            &["charge", "--amount", "3", "--order", "C3", "--typed"],
        ),
        &code,
    )
    .await;
    assert_eq!(paid.status.code(), Some(0), "{paid:?}");
    // Too late: the sale is paid (a refund is the way back).
    let late = tillpay(args(&till.socket, &["cancel", "C3"])).await;
    assert_eq!(late.status.code(), Some(1), "{late:?}");
    assert!(String::from_utf8_lossy(&late.stdout).contains("C3 PAID"));
    // Declined anyway: nothing kept, so the cancel stands.
    let declined = Behaviour::InsufficientFunds.code(Provider::Wechat, 14);
    let _ = tillpay_with_input(
        args(
            &till.socket,
            &["charge", "--amount", "3", "--order", "C4", "--typed"],
        ),
        &declined,
    )
    .await;
    let ok = tillpay(args(&till.socket, &["cancel", "C4"])).await;
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
}

#[tokio::test]
async fn connection_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tillpay(args(&dir.path().join("nobody.sock"), &["status"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach tillpay"));
    let till = common::TestTill::start(vec![], 0o600).await;
    let out = tillpay(args(&till.socket, &["charge", "--amount", "1.234"])).await;
    assert_eq!(out.status.code(), Some(2), "three decimals are refused");
    // A payment code never stands on the command line (ps, shell history).
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 15);
    let out = tillpay(args(
        &till.socket,
        &["charge", "--amount", "1", "--auth-code", &code],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = tillpay_with_input(
        args(&till.socket, &["charge", "--amount", "1", "--typed"]),
        "\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "an empty code is a usage error");
    let out = tillpay(args(&till.socket, &["query", "NOPE"])).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "unknown order is a clean negative answer"
    );
}

#[tokio::test]
async fn the_python_example_client_charges_a_sale() {
    let till = common::TestTill::start(vec![], 0o600).await;
    let code = Behaviour::ConfirmsAfter(1).code(Provider::Alipay, 13);
    let socket = till.socket.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .args([
                "examples/pos_client.py",
                "--socket",
                &socket,
                "--order",
                "PY1",
                "--amount",
                "150",
                "--typed",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = writeln!(stdin, "{code}");
        }
        child.wait_with_output().expect("python3 ends")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("user_paying"), "{stdout}");
    assert!(stdout.contains("PY1: paid"), "{stdout}");
}

#[tokio::test]
async fn a_charge_on_a_terminal_shows_its_progress_and_json_stays_one_object() {
    let till = common::TestTill::start(vec![], 0o600).await;
    let mut tty = tillpay::sim::pty::Pty::open().expect("pty");
    let code = Behaviour::ConfirmsAfter(4).code(Provider::Wechat, 71);
    let argv = args(
        &till.socket,
        &[
            "charge", "--amount", "3.00", "--order", "T71", "--typed", "--json",
        ],
    );
    let path = tty.path.clone();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        // Standard error is the terminal a cashier watches.
        let term = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("tty");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tillpay"))
            .args(argv)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(term)
            .spawn()
            .expect("tillpay runs");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(code.as_bytes());
        }
        child.wait_with_output().expect("tillpay ends")
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let seen = String::from_utf8_lossy(&tty.read_output().expect("read")).into_owned();
    assert!(seen.contains("submitted to the gateway"), "{seen:?}");
    assert!(seen.contains("customer confirming on phone"), "{seen:?}");
    // The machine's output is the one Payment object, nothing else.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(v["status"], "paid");
    // Off a terminal, no progress at all.
    let code = Behaviour::ConfirmsAfter(4).code(Provider::Wechat, 72);
    let out = tillpay_with_input(
        args(
            &till.socket,
            &["charge", "--amount", "3.00", "--order", "T72", "--typed"],
        ),
        &code,
    )
    .await;
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("confirming"),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_cashier_and_the_shift_from_a_terminal() {
    let till = common::TestTill::start(vec![], 0o600).await;
    let code = Behaviour::Coupon(1).code(Provider::Alipay, 61);
    let out = tillpay_with_input(
        args(
            &till.socket,
            &[
                "charge",
                "--amount",
                "8.00",
                "--order",
                "Z1",
                "--typed",
                "--operator",
                "alice",
            ],
        ),
        &code,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Z1 PAID ¥8.00 alipay"), "{stdout}");
    assert!(
        stdout.contains("customer paid ¥7.00, discount ¥1.00"),
        "{stdout}"
    );
    assert!(stdout.contains("cashier alice"), "{stdout}");
    let r = tillpay(args(
        &till.socket,
        &[
            "refund",
            "Z1",
            "--refund-no",
            "ZR1",
            "--amount",
            "3.00",
            "--operator",
            "bob",
        ],
    ))
    .await;
    assert_eq!(r.status.code(), Some(0), "{r:?}");
    let report = tillpay(args(&till.socket, &["shift", "report"])).await;
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(report.status.code(), Some(0), "{report:?}");
    for want in [
        "shift 1  running",
        "paid sales",
        "¥        8.00",
        "alice",
        "bob",
        "refunded ¥3.00",
        "net",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    let closed = tillpay(args(&till.socket, &["shift", "close", "--json"])).await;
    let v: serde_json::Value = serde_json::from_slice(&closed.stdout).expect("json");
    assert_eq!(v["shift_no"], 1);
    assert_eq!(v["next_shift_no"], 2);
    assert_eq!(v["sales"], serde_json::json!({"count": 1, "amount": 800}));
    assert_eq!(v["by_operator"]["bob"]["refunded"], 300);
    let kept = tillpay(args(
        &till.socket,
        &["shift", "report", "--shift", "1", "--json"],
    ))
    .await;
    let k: serde_json::Value = serde_json::from_slice(&kept.stdout).expect("json");
    assert_eq!(k["closed_at"], v["closed_at"], "the kept report");
    let bad = tillpay(args(
        &till.socket,
        &["charge", "--amount", "1", "--operator", "a b"],
    ))
    .await;
    assert_ne!(bad.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("operator_id"),
        "{bad:?}"
    );
}
