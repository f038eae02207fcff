//! `tillpay dev`, as a POS developer uses it: one command, a socket it
//! prints, scans typed on its standard input, a crash of the daemon with a
//! sale in flight that resumes, and a journal that is still there at the
//! next start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::common::Conn;

pub struct DevTill {
    child: Child,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
    pub socket: PathBuf,
}

impl DevTill {
    /// Starts `tillpay dev --fast` in `dir` and reads its banner.
    pub async fn start(dir: &Path) -> DevTill {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tillpay"))
            .args(["dev", "--fast", "--dir"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("tillpay dev runs");
        let stdin = child.stdin.take().expect("stdin");
        let out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut dev = DevTill {
            child,
            stdin,
            out,
            socket: PathBuf::new(),
        };
        let socket = dev.line_starting("socket:").await;
        dev.socket = PathBuf::from(socket.trim_start_matches("socket:").trim());
        dev.line_starting("commands:").await;
        dev
    }

    /// Reads its output until a line starting with `prefix`.
    pub async fn line_starting(&mut self, prefix: &str) -> String {
        let read = async {
            while let Ok(Some(line)) = self.out.next_line().await {
                if line.starts_with(prefix) {
                    return line;
                }
            }
            panic!("tillpay dev ended before printing {prefix:?}");
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("tillpay dev answers")
    }

    pub async fn command(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
    }

    pub async fn pos(&self) -> Conn {
        Conn::open(&self.socket).await
    }

    pub async fn quit(mut self) {
        self.command("quit").await;
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("quits")
            .expect("status");
        assert!(status.success(), "{status}");
    }
}

/// Queries `order` until it is final (or 30 s pass).
async fn settled(pos: &mut Conn, order: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let r = pos.call(1, "query", json!({"order_no": order})).await;
        let s = r["result"]["status"].as_str().unwrap_or("");
        if !["paying", "waiting_scan", ""].contains(&s) || Instant::now() > end {
            return r["result"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tillpay_dev_is_a_till_to_develop_against_and_keeps_its_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("dev");
    let mut dev = DevTill::start(&home).await;
    // The config it wrote is a real till's: `tillpay doctor` reads it.
    let config = home.join("tillpay.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("[till]") && text.contains("[wechat]") && text.contains("[alipay]"));
    let mut pos = dev.pos().await;

    // A typed code.
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 9001);
    let r = pos
        .call(
            2,
            "charge",
            json!({"order_no": "DV1", "amount": 1234, "auth_code": code}),
        )
        .await;
    assert_eq!(r["result"]["status"], "paid", "{r}");

    // A scan on the virtual scan gun, from its standard input.
    pos.send(json!({"jsonrpc": "2.0", "id": 3, "method": "charge", "params": {"order_no": "DV2", "amount": 500}}))
        .await;
    crate::till::next_matching(&mut pos, |m| m["params"]["event"] == "waiting_scan").await;
    let code = Behaviour::PaysAtOnce.code(Provider::Alipay, 9002);
    dev.command(&format!("scan {code}")).await;
    let scanned = dev.line_starting("scanned").await;
    assert!(!scanned.contains(&code), "the code is masked: {scanned}");
    let (r, _) = pos.answer(3).await;
    assert_eq!(r["result"]["status"], "paid", "{r}");

    // The daemon dies with a sale in flight; it resumes and ends it.
    let code = Behaviour::NeverConfirms.code(Provider::Alipay, 9003);
    pos.send(json!({"jsonrpc": "2.0", "id": 4, "method": "charge", "params": {"order_no": "DV3", "amount": 700, "auth_code": code}}))
        .await;
    // Once the gateway has it (the customer is asked for a password).
    crate::till::next_matching(&mut pos, |m| m["params"]["event"] == "user_paying").await;
    dev.command("crash").await;
    dev.line_starting("daemon killed").await;
    let mut pos = dev.pos().await;
    let p = settled(&mut pos, "DV3").await;
    assert_eq!(p["status"], "revoked", "{p}");
    dev.quit().await;

    // The next start has the journal of the last one.
    let dev = DevTill::start(&home).await;
    let mut pos = dev.pos().await;
    let p = settled(&mut pos, "DV1").await;
    assert_eq!(p["status"], "paid", "{p}");
    dev.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_input_closed_sigterm_still_stops_it_and_its_daemon() {
    // A POS developer's script runs it with `< /dev/null` (or a pipe that
    // closes) and stops it with SIGTERM: the till must stop, daemon too.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = DevTill::start(dir.path()).await;
    drop(dev.stdin);
    drop(Conn::open(&dev.socket).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = dev.child.id().expect("running") as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid, which it still is (not reaped).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(20), dev.child.wait())
        .await
        .expect("tillpay dev stopped within 20 s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status}");
    assert!(
        tokio::net::UnixStream::connect(&dev.socket).await.is_err(),
        "the daemon stopped with it"
    );
}
