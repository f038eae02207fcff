//! What a till costs as its history grows: start-up time to `READY=1` of
//! the release binary over a journal of many past sales, the journal's
//! bytes per sale, and the daemon's idle memory after 50 real sales.
//! `cargo bench --bench footprint` (1 M past sales; `TILLPAY_BENCH_QUICK=1`
//! for 20 000, as CI runs it).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tillpay::domain::Fen;
use tillpay::gateway::PaidInfo;
use tillpay::journal::Journal;
use tillpay::machine::{Attempt, Phase, Record};

fn quick() -> bool {
    std::env::var_os("TILLPAY_BENCH_QUICK").is_some()
}

/// On the target directory's disk, not a tmpfs: fsync must be real.
fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

/// One real paid sale through the journal's own API (its events and
/// indexes as a till writes them), then `n - 1` copies of it in SQL.
fn journal_of(path: &Path, n: u64) {
    {
        let j = Journal::open(path, "T1").expect("journal");
        j.ensure_sale("S0", Fen(1234), "2 coffees", Some("alice"))
            .expect("sale");
        let code = tillpay::gateway::recognise("134567890123456789").expect("code");
        let row = j.begin_attempt("S0", &code).expect("attempt");
        let done = Attempt {
            phase: Phase::Paid,
            ..row.state
        };
        let rec = Record {
            paid: Some(PaidInfo {
                paid_by: tillpay::gateway::PaidBy {
                    customer_paid: Some(Fen(1234)),
                    discount: None,
                    payer: Some(tillpay::gateway::mask_payer("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")),
                },
                transaction_id: "4200002026112300000000000001".into(),
                paid_at: Some("2026-11-23T10:00:10+08:00".into()),
                amount: Some(Fen(1234)),
            }),
            ..Record::new("paid")
        };
        j.record(&row.out_trade_no, &done, &rec).expect("record");
    }
    let conn = rusqlite::Connection::open(path).expect("open");
    let cols = |table: &str| -> Vec<String> {
        let mut s = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .expect("columns");
        let names = s.query_map([], |r| r.get::<_, String>(0)).expect("columns");
        names.map(|n| n.expect("name")).collect()
    };
    // Each copy gets its own order number, trade number and code hash.
    let copy = |table: &str, key: &str| {
        let cols = cols(table);
        let select: Vec<String> = cols
            .iter()
            .map(|c| match c.as_str() {
                "order_no" => "'S' || n.i".to_string(),
                "out_trade_no" => "'T1_S' || n.i || '_1'".to_string(),
                "code_hash" => "unhex(printf('%032x', n.i))".to_string(),
                "created_at" | "submitted_at" | "updated_at" | "at" => format!("{c} + n.i"),
                "id" => "NULL".to_string(),
                other => other.to_string(),
            })
            .collect();
        let sql = format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
             INSERT INTO {table} ({}) SELECT {} FROM {table}, n WHERE {table}.{key} = 'S0'",
            n - 1,
            cols.join(", "),
            select.join(", ")
        );
        conn.execute_batch(&sql).expect("copies");
    };
    conn.execute_batch("PRAGMA synchronous = OFF; BEGIN")
        .expect("begin");
    copy("sales", "order_no");
    copy("attempts", "order_no");
    copy("events", "order_no");
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("commit");
}

/// A till's config with a WeChat channel that is never called at start-up.
fn config(dir: &Path, journal_dir: &Path, extra: &str) -> PathBuf {
    let key = dir.join("wechat-key");
    std::fs::write(&key, "192006250b4c09247ec02edce69f6a2d\n").expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let text = format!(
        "[till]\nid = \"T1\"\nstate_dir = {state:?}\n[pos]\nsocket = {sock:?}\nsocket_mode = \"0600\"\n{extra}",
        state = journal_dir.display().to_string(),
        sock = dir.join("pos.sock").display().to_string(),
    );
    let text = if extra.contains("[wechat]") {
        text
    } else {
        format!(
            "{text}[wechat]\nbase_url = \"http://127.0.0.1:9\"\nappid = \"wx2421b1c4370ec43b\"\nmch_id = \"10000100\"\napi_key_file = {key:?}\n",
            key = key.display().to_string()
        )
    };
    let path = dir.join("tillpay.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// Starts the release daemon; answers it and how long it took to READY=1.
fn start(config: &Path, dir: &Path) -> (Child, Duration) {
    let notify = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify);
    let sock = UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tillpay"))
        .args(["run", "--config"])
        .arg(config)
        .env("NOTIFY_SOCKET", &notify)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tillpay run");
    let mut buf = [0u8; 512];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("READY=1") => {
                return (child, t.elapsed())
            }
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no READY=1 from tillpay run: {e}");
            }
        }
    }
}

fn stop(mut child: Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let _ = child.wait();
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Where the resident set is: the binary's code and other mapped files,
/// and the heap and stacks (anonymous), from smaps_rollup, in MiB.
fn rss_split(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0) as f64
            / 1024.0
    };
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    format!(
        "{:.1} MiB anonymous, {:.1} MiB mapped files; {threads} threads",
        field("Anonymous:"),
        field("Rss:") - field("Anonymous:")
    )
}

fn history(n: u64) {
    let dir = bench_dir();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state");
    let journal = state.join("journal.sqlite");
    let t = Instant::now();
    journal_of(&journal, n);
    let built = t.elapsed();
    let bytes = std::fs::metadata(&journal).map(|m| m.len()).unwrap_or(0);
    // TILLPAY_BENCH_KEEP=path: a copy of the journal, to look inside.
    if let Some(keep) = std::env::var_os("TILLPAY_BENCH_KEEP") {
        std::fs::copy(&journal, keep).expect("keep a copy");
    }
    println!(
        "journal of {n} paid sales (built in {:.1} s): {:.1} MiB, {} bytes per sale",
        built.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64,
        bytes / n
    );
    let cfg = config(dir.path(), &state, "");
    let mut times = Vec::new();
    for _ in 0..5 {
        let (child, took) = start(&cfg, dir.path());
        times.push(took);
        stop(child);
    }
    times.sort();
    println!(
        "start-up to READY=1 over it: median {:.1} ms (min {:.1}, max {:.1}; 5 starts)",
        times[2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[4].as_secs_f64() * 1e3
    );
}

/// The daemon's memory at rest after 50 sales through the simulator.
async fn idle_rss() {
    let sim = tillpay::sim::Simulator::start(Duration::from_millis(10))
        .await
        .expect("simulator");
    let dir = bench_dir();
    let state = dir.path().join("state");
    let tables = sim
        .write_config_tables(dir.path(), 0, tillpay::sim::WechatApi::V2)
        .expect("tables");
    let cfg = config(dir.path(), &state, &tables);
    let (child, _) = start(&cfg, dir.path());
    let pid = child.id();
    let at_start = rss_kib(pid);
    let mut pos = tillpay::pos::client::Client::connect(&dir.path().join("pos.sock"))
        .await
        .expect("connect");
    for i in 0..50u64 {
        let provider = if i % 2 == 0 {
            tillpay::domain::Provider::Wechat
        } else {
            tillpay::domain::Provider::Alipay
        };
        let code = tillpay::sim::behaviour::Behaviour::PaysAtOnce.code(provider, i);
        let p = pos
            .call(
                "charge",
                serde_json::json!({"order_no": format!("R{i}"), "amount": 100 + i, "auth_code": code}),
                |_| {},
            )
            .await
            .expect("charge");
        assert_eq!(p["status"], "paid", "{p}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "daemon VmRSS: {:.1} MiB at READY=1, {:.1} MiB idle after 50 sales ({})",
        at_start as f64 / 1024.0,
        rss_kib(pid) as f64 / 1024.0,
        rss_split(pid)
    );
    stop(child);
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    history(if quick() { 20_000 } else { 1_000_000 });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(idle_rss());
}
