//! What the HQ tests share: a fresh database in the throwaway PostgreSQL
//! cluster `.ci/run` starts (`TILLPAY_HQ_PG`), the real `tillpay-hq`
//! binary, and real `tillpay run` daemons that sync to it.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The cluster's connection string without a database name, or `None`
/// (the test then skips, except under CI where it fails).
pub fn pg_base() -> Option<String> {
    match std::env::var("TILLPAY_HQ_PG") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI: TILLPAY_HQ_PG is not set (bash .ci/run starts the test cluster)"
            );
            eprintln!("skipped: no PostgreSQL (run `eval \"$(bash .ci/pg-start)\"` to start one)");
            None
        }
    }
}

/// A new, empty database of its own for one test; its connection string.
pub async fn fresh_db(base: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "hq_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        chrono::Utc::now().timestamp_millis() % 1_000_000
    );
    let (client, conn) =
        tokio_postgres::connect(&format!("{base} dbname=postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    format!("{base} dbname={name}")
}

pub fn secret(path: &Path, text: &str) {
    std::fs::write(path, format!("{text}\n")).expect("write secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The API token every test HQ uses.
pub const API_TOKEN: &str = "fleet-api-token-0123456789abcdef";

/// A config for HQ on `port` (0: any) over `db`.
pub fn hq_config(dir: &Path, db: &str, port: u16) -> PathBuf {
    secret(&dir.join("api-token"), API_TOKEN);
    let path = dir.join("tillpay-hq.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[database]\nurl = {db:?}\npool_size = 8\n[api]\ntoken_file = \"api-token\"\n"
        ),
    )
    .expect("config");
    path
}

/// As [`hq_config`], with the merchant's gateway accounts at the
/// simulator (its keys written under `dir/keys`, WeChat's reverse allowed
/// `min_reverse_delay_ms` after the pay request) and `top` (top-level keys)
/// first.
pub fn hq_config_with_gateways(
    dir: &Path,
    db: &str,
    port: u16,
    sim: &tillpay::sim::Simulator,
    min_reverse_delay_ms: u64,
    top: &str,
) -> PathBuf {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).expect("keys");
    let tables = sim
        .write_config_tables(&keys, min_reverse_delay_ms, tillpay::sim::WechatApi::V2)
        .expect("tables");
    let cfg = hq_config(dir, db, port);
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, format!("{top}{text}{tables}")).expect("config");
    cfg
}

pub fn hq_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tillpay-hq"))
}

/// The till's daemon, built beside HQ in the same target directory.
pub fn tillpay_bin() -> PathBuf {
    let p = hq_bin().with_file_name("tillpay");
    assert!(
        p.exists(),
        "{} is missing: build the workspace (cargo test builds it; or cargo build --bin tillpay)",
        p.display()
    );
    p
}

/// `tillpay-hq till add`: the till's token.
pub fn add_till(config: &Path, store: &str, till: &str) -> String {
    let file = config.with_file_name(format!("token-{till}"));
    let out = Command::new(hq_bin())
        .args(["till", "add", "--config"])
        .arg(config)
        .args(["--store", store, "--till", till, "--token-file"])
        .arg(&file)
        .output()
        .expect("till add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&file)
        .expect("token")
        .trim()
        .to_string()
}

/// A running `tillpay-hq serve`.
pub struct HqProcess {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl HqProcess {
    pub fn start(config: &Path) -> HqProcess {
        let log = config.with_file_name("hq.log");
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut child = Command::new(hq_bin())
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("tillpay-hq serve");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).expect("first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "tillpay-hq said {line:?}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        HqProcess { child, addr, log }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on, for a restart on the same address.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HqProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The fleet API: GET `path` with the API token.
pub async fn get(hq_url: &str, path: &str) -> serde_json::Value {
    let res = reqwest::Client::new()
        .get(format!("{hq_url}{path}"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("GET");
    let status = res.status();
    let body = res.text().await.expect("body");
    assert!(status.is_success(), "GET {path}: {status} {body}");
    serde_json::from_str(&body).expect("json")
}

/// A real `tillpay run` daemon against the simulator, syncing to HQ.
pub struct TillProcess {
    pub id: String,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Option<Child>,
    pub config: PathBuf,
}

impl TillProcess {
    pub async fn start(
        sim: &tillpay::sim::Simulator,
        id: &str,
        hq_url: &str,
        token: &str,
    ) -> TillProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = sim
            .write_config_tables(dir.path(), 0, tillpay::sim::WechatApi::V2)
            .expect("sim tables");
        let payment = "poll_interval_ms = 100\npay_timeout_ms = 2000\nrevoke_interval_ms = 100\nrevoke_max_attempts = 3\nhttp_timeout_ms = 1000\n";
        TillProcess::start_in(dir, id, hq_url, token, payment, "", &tables).await
    }

    /// A till in relay mode: no gateway key of its own, every call through
    /// HQ. Its timings are the binary end-to-end tests' (WeChat's reverse
    /// 1 s after the pay request), except that a revoke is retried for
    /// 3 s, longer than HQ takes to restart, and its HTTP timeout is
    /// longer than HQ's own towards the gateways.
    pub async fn start_relay(id: &str, hq_url: &str, token: &str) -> TillProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let payment = "poll_interval_ms = 200\npay_timeout_ms = 2000\nrevoke_interval_ms = 100\nrevoke_max_attempts = 30\nhttp_timeout_ms = 3000\n";
        let relay = "relay = true\nmin_revoke_delay_ms = 1000\n";
        TillProcess::start_in(dir, id, hq_url, token, payment, relay, "").await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        id: &str,
        hq_url: &str,
        token: &str,
        payment: &str,
        hq_extra: &str,
        tables: &str,
    ) -> TillProcess {
        secret(&dir.path().join("hq-token"), token);
        let socket = dir.path().join("pos.sock");
        let config = dir.path().join("tillpay.toml");
        std::fs::write(
            &config,
            format!(
                "[till]\nid = {id:?}\nstate_dir = {state:?}\n[pos]\nsocket = {sock:?}\nsocket_mode = \"0600\"\n\
                 [payment]\n{payment}\
                 [hq]\nurl = {hq_url:?}\ntoken_file = \"hq-token\"\nsync_interval_ms = 200\n{hq_extra}{tables}",
                state = dir.path().join("state").display().to_string(),
                sock = socket.display().to_string(),
            ),
        )
        .expect("config");
        let mut t = TillProcess {
            id: id.to_string(),
            dir,
            socket,
            child: None,
            config,
        };
        t.spawn().await;
        t
    }

    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("log");
        let child = Command::new(tillpay_bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tillpay run");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if tokio::net::UnixStream::connect(&self.socket).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("tillpay {} did not start: {}", self.id, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn journal(&self) -> tillpay::journal::Journal {
        tillpay::journal::Journal::open(&self.dir.path().join("state/journal.sqlite"), &self.id)
            .expect("journal")
    }

    /// The till's newest event id.
    pub fn last_event(&self) -> i64 {
        newest_event(&self.dir.path().join("state/journal.sqlite"))
    }

    pub async fn pos(&self) -> tillpay::pos::client::Client {
        tillpay::pos::client::Client::connect(&self.socket)
            .await
            .expect("connect")
    }
}

/// The journal's newest event id, read through the journal's own outbox.
fn newest_event(path: &Path) -> i64 {
    let j = tillpay::journal::Journal::open(path, "probe").expect("journal");
    let mut after = 0;
    loop {
        let b = j.outbox(after, 500).expect("outbox");
        match b.events.last() {
            Some(e) => after = e.id,
            None => return after,
        }
    }
}

impl Drop for TillProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
