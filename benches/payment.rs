//! The payment path's own costs, beside the gateway's: the journal's
//! durable commits (WAL + synchronous=FULL, one per step, payment-rules.md §3), and
//! whole sales through the engine, the real clients and the simulator over
//! loopback HTTP with real signatures (HMAC-SHA256 for WeChat, RSA2 for
//! Alipay). Prints p50/p99 and the process's memory. Run:
//! `cargo bench --bench payment`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tillpay::config::PaymentConfig;
use tillpay::domain::{Fen, Provider};
use tillpay::engine::{ChargeRequest, Engine, PaymentStatus};
use tillpay::gateway::alipay::AlipayGateway;
use tillpay::gateway::wechat::WechatGateway;
use tillpay::gateway::{Gateway, PaidInfo};
use tillpay::journal::Journal;
use tillpay::machine::{Attempt, Phase, Record};
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::Simulator;

/// commits: 1_000, or 50 with `TILLPAY_BENCH_QUICK` (CI runs the
/// benches that way, so their figures cannot rot).
fn commits() -> usize {
    if std::env::var_os("TILLPAY_BENCH_QUICK").is_some() {
        50
    } else {
        1_000
    }
}
/// sales: 300, or 20 with `TILLPAY_BENCH_QUICK` (CI runs the
/// benches that way, so their figures cannot rot).
fn sales() -> u64 {
    if std::env::var_os("TILLPAY_BENCH_QUICK").is_some() {
        20
    } else {
        300
    }
}
/// concurrent: 50, or 10 with `TILLPAY_BENCH_QUICK` (CI runs the
/// benches that way, so their figures cannot rot).
fn concurrent() -> u64 {
    if std::env::var_os("TILLPAY_BENCH_QUICK").is_some() {
        10
    } else {
        50
    }
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3
    )
}

fn vm_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// On the target directory's disk, not a tmpfs: fsync must be real.
fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

fn journal_commits() {
    let commits = commits();
    let dir = bench_dir();
    let j = Journal::open(&dir.path().join("journal.sqlite"), "T1").expect("journal");
    let (mut begin, mut paid) = (Vec::new(), Vec::new());
    for i in 0..commits {
        let order = format!("J{i}");
        j.ensure_sale(&order, Fen(100), "bench", None)
            .expect("sale");
        let code = tillpay::gateway::recognise(&format!("13{:016}", i)).expect("code");
        let t = Instant::now();
        let row = j.begin_attempt(&order, &code).expect("attempt");
        begin.push(t.elapsed());
        let done = Attempt {
            phase: Phase::Paid,
            ..row.state
        };
        let rec = Record {
            paid: Some(PaidInfo {
                paid_by: Default::default(),
                transaction_id: format!("4200{i}"),
                paid_at: None,
                amount: Some(Fen(100)),
            }),
            ..Record::new("paid")
        };
        let t = Instant::now();
        j.record(&row.out_trade_no, &done, &rec).expect("record");
        paid.push(t.elapsed());
    }
    println!("journal, {commits} attempts (WAL + synchronous=FULL, BEGIN IMMEDIATE):");
    println!(
        "  begin attempt (before the pay request)  {}",
        percentiles(begin)
    );
    println!(
        "  record paid                              {}",
        percentiles(paid)
    );
}

/// The simulator on loopback and a fresh journal on the target's disk.
async fn rig() -> (Simulator, tempfile::TempDir, Arc<Journal>) {
    let sim = Simulator::start(Duration::from_millis(10))
        .await
        .expect("simulator");
    let dir = bench_dir();
    let journal =
        Arc::new(Journal::open(&dir.path().join("journal.sqlite"), "T1").expect("journal"));
    (sim, dir, journal)
}

async fn engine_sales() {
    let sales = sales();
    let concurrent = concurrent();
    let (sim, _dir, journal) = rig().await;
    let timeout = Duration::from_secs(5);
    let gateways: Vec<Arc<dyn Gateway>> = vec![
        Arc::new(
            WechatGateway::new(&sim.wechat_config(Duration::ZERO), "T1", timeout).expect("wechat"),
        ),
        Arc::new(AlipayGateway::new(&sim.alipay_config(), "T1", timeout).expect("alipay")),
    ];
    let engine = Engine::new(journal, gateways, PaymentConfig::default());
    let sale = |engine: Arc<Engine>, provider: Provider, serial: u64| async move {
        let req = ChargeRequest {
            operator_id: None,
            order_no: format!("{provider}{serial}"),
            amount: 100 + serial,
            subject: Some("bench".into()),
            auth_code: Some(Behaviour::PaysAtOnce.code(provider, serial)),
        };
        let t = Instant::now();
        let p = engine.charge(req).await.expect("charge");
        assert_eq!(p.status, PaymentStatus::Paid, "{p:?}");
        t.elapsed()
    };
    println!("sales through the engine, simulator on loopback, paid at once (sequential):");
    for provider in [Provider::Wechat, Provider::Alipay] {
        let mut v = Vec::new();
        for serial in 0..sales {
            v.push(sale(engine.clone(), provider, serial).await);
        }
        println!(
            "  {:<7} {sales} sales  {}",
            provider.as_str(),
            percentiles(v)
        );
    }
    let t = Instant::now();
    let tasks: Vec<_> = (0..concurrent)
        .map(|i| {
            let provider = if i % 2 == 0 {
                Provider::Wechat
            } else {
                Provider::Alipay
            };
            tokio::spawn(sale(engine.clone(), provider, 10_000 + i))
        })
        .collect();
    let mut v = Vec::new();
    for task in tasks {
        v.push(task.await.expect("join"));
    }
    println!(
        "  {concurrent} sales at once (both providers): all done in {:.1} ms; each {}",
        t.elapsed().as_secs_f64() * 1e3,
        percentiles(v)
    );
    println!(
        "  simulator ledger: {} orders, each charged once: {}",
        sim.ledger.orders().len(),
        sim.ledger.orders().iter().all(|o| o.charges == 1)
    );
}

/// A channel that notes when the engine hands it a pay request (the
/// journal's commit done), then passes everything to the real client.
struct Stamped {
    inner: WechatGateway,
    handed: std::sync::Mutex<Option<Instant>>,
}

#[async_trait::async_trait]
impl Gateway for Stamped {
    fn channel(&self) -> &'static str {
        self.inner.channel()
    }
    fn carries(&self) -> &'static [Provider] {
        self.inner.carries()
    }
    fn min_revoke_delay(&self) -> Duration {
        self.inner.min_revoke_delay()
    }
    async fn pay(&self, req: &tillpay::gateway::PayRequest) -> tillpay::gateway::PayAnswer {
        if let Ok(mut h) = self.handed.lock() {
            *h = Some(Instant::now());
        }
        self.inner.pay(req).await
    }
    async fn query(&self, otn: &str) -> tillpay::gateway::QueryAnswer {
        self.inner.query(otn).await
    }
    async fn revoke(&self, otn: &str) -> tillpay::gateway::RevokeAnswer {
        self.inner.revoke(otn).await
    }
    async fn refund(
        &self,
        req: &tillpay::gateway::RefundRequest,
    ) -> tillpay::gateway::RefundAnswer {
        self.inner.refund(req).await
    }
    async fn refund_query(&self, otn: &str, no: &str) -> tillpay::gateway::RefundAnswer {
        self.inner.refund_query(otn, no).await
    }
    async fn bill(&self, date: &str) -> tillpay::gateway::BillAnswer {
        self.inner.bill(date).await
    }
}

fn ms(v: &[f64]) -> String {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    format!("p50 {:>6.2} ms  p99 {:>6.2} ms", at(0.5), at(0.99))
}

/// A scan to the pay request handed to the channel (the journal
/// committed first), and to the paid answer committed: tillpay's engine,
/// and a plain Python script doing the same happy path, on the same
/// simulator and disk.
async fn beside_python() {
    let sales = sales();
    let (sim, dir, journal) = rig().await;
    let gw = Arc::new(Stamped {
        inner: WechatGateway::new(
            &sim.wechat_config(Duration::ZERO),
            "T1",
            Duration::from_secs(5),
        )
        .expect("wechat"),
        handed: std::sync::Mutex::new(None),
    });
    let engine = Engine::new(journal, vec![gw.clone()], PaymentConfig::default());
    let (mut to_request, mut to_paid) = (Vec::new(), Vec::new());
    let mut events = engine.subscribe();
    for serial in 0..sales {
        // The cashier rings the sale up; it waits for the scan gun.
        let order_no = format!("P{serial}");
        let req = ChargeRequest {
            operator_id: None,
            order_no: order_no.clone(),
            amount: 100 + serial,
            subject: Some("bench".into()),
            auth_code: None,
        };
        let charging = tokio::spawn({
            let engine = engine.clone();
            async move { engine.charge(req).await }
        });
        loop {
            let n = events.recv().await.expect("events");
            if n.params()["order_no"] == order_no.as_str() && n.params()["event"] == "waiting_scan"
            {
                break;
            }
        }
        let code = tillpay::gateway::recognise(
            &Behaviour::PaysAtOnce.code(Provider::Wechat, 50_000 + serial),
        )
        .expect("code");
        let t = Instant::now();
        engine.scan(code).await;
        let p = charging.await.expect("join").expect("charge");
        let done = t.elapsed();
        assert_eq!(p.status, PaymentStatus::Paid, "{p:?}");
        let handed = gw.handed.lock().ok().and_then(|h| *h).unwrap_or(t);
        to_request.push(handed.duration_since(t).as_secs_f64() * 1e3);
        to_paid.push(done.as_secs_f64() * 1e3);
    }
    println!("scan to the pay request (tillpay: handed to the channel, which signs and sends it; python: signed and sent) and to paid, WeChat v2 on the simulator ({sales} sales, sequential):");
    println!(
        "  tillpay  to request {}   to paid {}",
        ms(&to_request),
        ms(&to_paid)
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_happy_path.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(sim.addr.to_string())
        .args([
            tillpay::sim::WECHAT_APPID,
            tillpay::sim::WECHAT_MCH_ID,
            tillpay::sim::WECHAT_API_KEY,
        ])
        .arg(dir.path().join("python.sqlite"))
        .arg(sales.to_string())
        .arg("70000")
        .output()
        .await;
    let figures = out
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
    let series = |v: &serde_json::Value, k: &str| -> Vec<f64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default()
    };
    match figures {
        Some(v) if !series(&v, "to_paid_ms").is_empty() => println!(
            "  python   to request {}   to paid {}",
            ms(&series(&v, "to_request_ms")),
            ms(&series(&v, "to_paid_ms"))
        ),
        _ => println!("  python   (no python3, or the script failed: not compared)"),
    }
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    journal_commits();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(engine_sales());
    rt.block_on(beside_python());
    println!("process VmRSS after all: {:.1} MB", vm_rss_mb());
}
