//! A whole till for end-to-end tests: the simulator in the test process,
//! the real `tillpay run` binary as a child, a pty as its scanner.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::pty::Pty;
use tillpay::sim::{Simulator, WechatApi};

use crate::common::Conn;

/// The statuses a sale ends in.
pub const FINAL: [&str; 5] = ["paid", "failed", "cancelled", "revoked", "needs_attention"];

/// A small deterministic generator (xorshift64*), so a seed replays a run.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub enum Speed {
    /// Polls every 200 ms, revoke after 2 s, WeChat's reverse delay 1 s.
    Fast,
}

pub struct E2eTill {
    pub sim: Simulator,
    pub scanner: Pty,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// Set in the daemon's environment at each start (an LD_PRELOAD layer).
    pub env: Vec<(String, String)>,
    daemon: Option<Child>,
}

impl E2eTill {
    pub async fn start(speed: Speed) -> E2eTill {
        E2eTill::start_with(speed, |_, tables| tables).await
    }

    /// As [`E2eTill::start`], with the config's gateway tables passed
    /// through `tables` first (to put a fault proxy in front of the
    /// simulator, say).
    pub async fn start_with(
        speed: Speed,
        rewrite: impl FnOnce(&Simulator, String) -> String,
    ) -> E2eTill {
        E2eTill::start_api(speed, WechatApi::V2, rewrite).await
    }

    /// As [`E2eTill::start_with`], speaking WeChat Pay `api` to the
    /// simulator.
    pub async fn start_api(
        _speed: Speed,
        api: WechatApi,
        rewrite: impl FnOnce(&Simulator, String) -> String,
    ) -> E2eTill {
        let sim = Simulator::start(Duration::from_millis(200))
            .await
            .expect("simulator");
        let scanner = Pty::open().expect("pty");
        let dir = tempfile::tempdir().expect("tempdir");
        // The daemon opens the scanner by a stable name, as udev makes it.
        let link = dir.path().join("tillpay-scanner");
        std::os::unix::fs::symlink(&scanner.path, &link).expect("symlink");
        let socket = dir.path().join("pos.sock");
        let tables = sim
            .write_config_tables(dir.path(), 1000, api)
            .expect("credentials");
        let tables = rewrite(&sim, tables);
        let text = format!(
            "[till]\nid = \"T1\"\nstate_dir = {state:?}\n\n[pos]\nsocket = {sock:?}\nsocket_mode = \"0600\"\n\n[scanner]\ndevice = {dev:?}\nframe_gap_ms = 30\n\n[payment]\npoll_interval_ms = 200\npay_timeout_ms = 2000\nrevoke_interval_ms = 100\nrevoke_max_attempts = 3\nhttp_timeout_ms = 1000\nscan_timeout_ms = 20000\n\n{tables}",
            state = dir.path().join("state").display().to_string(),
            sock = socket.display().to_string(),
            dev = link.display().to_string(),
        );
        let config = dir.path().join("tillpay.toml");
        std::fs::write(&config, text).expect("config");
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut t = E2eTill {
            sim,
            scanner,
            dir,
            socket,
            config,
            env: Vec::new(),
            daemon: None,
        };
        t.spawn().await;
        t
    }

    /// Starts `tillpay run` and waits until it answers on its socket.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_tillpay"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tillpay runs");
        self.daemon = Some(child);
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(s) = tokio::net::UnixStream::connect(&self.socket).await {
                drop(s);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("tillpay did not start: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub async fn pos(&self) -> Conn {
        Conn::open(&self.socket).await
    }

    pub async fn wait_armed(&self, order: &str) {
        let mut c = self.pos().await;
        for i in 0..500 {
            let s = c.call(i, "status", json!({})).await;
            if s["result"]["waiting_order"] == order {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{order} never waited for a scan");
    }

    /// Money kept at the gateway if and only if the POS was told paid,
    /// never more than one charge, and no reverse too soon.
    pub fn assert_ledger_agrees(&self, out_trade_no: &str, payment: &Value) {
        let amount = payment["amount"].as_u64().expect("amount");
        let kept = self.sim.ledger.money_kept(out_trade_no);
        let charges = self.sim.ledger.order(out_trade_no).map_or(0, |o| o.charges);
        assert!(charges <= 1, "{out_trade_no} charged {charges} times");
        assert_eq!(
            self.sim.ledger.early_reverses(),
            0,
            "a reverse came sooner after its pay than the till is configured for"
        );
        if payment["status"] == "paid" {
            assert_eq!(
                kept, amount,
                "{out_trade_no}: paid but the gateway kept {kept}"
            );
        } else {
            assert_eq!(
                kept, 0,
                "{out_trade_no}: {} but the gateway kept {kept}",
                payment["status"]
            );
        }
    }

    /// The daemon's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.daemon.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// kill -9: no chance to clean up, as a power cut.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn stop(mut self) {
        if let Some(mut c) = self.daemon.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = tokio::task::spawn_blocking(move || c.wait()).await;
        }
    }
}

impl Drop for E2eTill {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The Payment of `order` once final (or as it stands after `patience`),
/// or `None` when the till does not know the order (1005: killed before
/// the charge reached the journal).
pub async fn final_payment(t: &E2eTill, order: &str, patience: Duration) -> Option<Value> {
    let mut c = t.pos().await;
    let end = Instant::now() + patience;
    for i in 0.. {
        let r = c.call(i, "query", json!({"order_no": order})).await;
        if r["error"]["code"] == 1005 {
            return None;
        }
        let done = FINAL.contains(&r["result"]["status"].as_str().unwrap_or(""));
        if done || Instant::now() > end {
            return Some(r["result"].clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// How one sale ended, judged against the simulator's ledger.
#[derive(Debug, PartialEq, Eq)]
pub enum Judged {
    Paid,
    /// Failed, cancelled or revoked, with no money kept.
    Unpaid,
    /// The till never heard of it, and the gateway kept nothing.
    NeverJournaled,
    /// Waiting for an operator, as a customer whose every revoke fails may.
    Operator,
    /// What went wrong, for the log.
    DoubleCharge(String),
    Lost(String),
    Unresolved(String),
}

/// One sale's end (`p`, or `None` when the till does not know the order)
/// against the ledger: paid exactly when the gateway kept the amount, at
/// most one charge, and an operator only for a customer whose every
/// revoke fails.
pub fn judge(t: &E2eTill, order: &str, code: &str, p: Option<&Value>) -> Judged {
    let Some(p) = p else {
        let kept = t.sim.ledger.money_kept_with_prefix(&format!("T1_{order}_"));
        return if kept == 0 {
            Judged::NeverJournaled
        } else {
            Judged::Lost(format!("{order}: unknown to the till, yet {kept} fen kept"))
        };
    };
    let status = p["status"].as_str().unwrap_or("");
    let otn = p["out_trade_no"].as_str().unwrap_or("");
    let kept = t.sim.ledger.money_kept(otn);
    let charges = t.sim.ledger.order(otn).map_or(0, |o| o.charges);
    if charges > 1 {
        return Judged::DoubleCharge(format!("{order}: charged {charges} times: {p}"));
    }
    match status {
        "paid" if kept == p["amount"].as_u64().unwrap_or(0) => Judged::Paid,
        "failed" | "cancelled" | "revoked" if kept == 0 => Judged::Unpaid,
        "needs_attention" if Behaviour::of_code(code) == Behaviour::RevokeFails => Judged::Operator,
        "needs_attention" => Judged::Unresolved(format!("{order}: needs attention: {p}")),
        s if FINAL.contains(&s) => {
            Judged::Lost(format!("{order}: {s} but the gateway kept {kept}: {p}"))
        }
        _ => Judged::Unresolved(format!("{order}: still {status}: {p}")),
    }
}

/// A customer chosen at random: a gateway, and how they behave.
pub fn random_customer(rng: &mut Rng) -> (tillpay::domain::Provider, Behaviour) {
    use tillpay::domain::Provider;
    let provider = [Provider::Wechat, Provider::Alipay][rng.below(2) as usize];
    let b = Behaviour::ALL[rng.below(Behaviour::ALL.len() as u64) as usize];
    (provider, b)
}

/// The longest a sale can take to settle once its pay request left: the
/// 2-minute pay window (a revoke that finds no order waits it out), and
/// some slack.
pub const LONGEST_SETTLE: Duration = Duration::from_secs(150);

/// A number from the environment (a long run's size, a seed to replay).
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// The seed in `name`, or a fresh one from the clock.
pub fn seed(name: &str) -> u64 {
    env_u64(name).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    })
}

/// Sales counted by how they ended.
#[derive(Default, Debug)]
pub struct Tally {
    pub sales: u64,
    pub paid: u64,
    pub unpaid: u64,
    pub never_journaled: u64,
    pub operator: u64,
    pub double_charges: u64,
    pub lost: u64,
    pub unresolved: u64,
}

impl Tally {
    /// Counts one sale; what went wrong goes to the test's log.
    pub fn count(&mut self, j: Judged) {
        self.sales += 1;
        let why = match j {
            Judged::Paid => return self.paid += 1,
            Judged::Unpaid => return self.unpaid += 1,
            Judged::NeverJournaled => return self.never_journaled += 1,
            Judged::Operator => return self.operator += 1,
            Judged::DoubleCharge(why) => {
                self.double_charges += 1;
                why
            }
            Judged::Lost(why) => {
                self.lost += 1;
                why
            }
            Judged::Unresolved(why) => {
                self.unresolved += 1;
                why
            }
        };
        eprintln!("{why}");
    }

    /// Double charges, lost payments, unresolved sales: all must be 0.
    pub fn failures(&self) -> (u64, u64, u64) {
        (self.double_charges, self.lost, self.unresolved)
    }
}

/// Builds the LD_PRELOAD layer `tests/<name>/<name>.c` into `dir` with the
/// machine's C compiler, and returns the library's path.
pub fn build_preload(name: &str, dir: &std::path::Path) -> PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
        .join(format!("{name}.c"));
    let so = dir.join(format!("lib{name}.so"));
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "cc {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// The next message on `c` that `f` accepts (others are skipped).
pub async fn next_matching(c: &mut Conn, f: impl Fn(&Value) -> bool) -> Value {
    loop {
        let msg = c.next().await.expect("connection open");
        if f(&msg) {
            return msg;
        }
    }
}
