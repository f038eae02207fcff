//! What relay mode costs a sale: pay calls straight to the simulator's
//! WeChat gateway, then the same through HQ (its journal in PostgreSQL,
//! `TILLPAY_HQ_PG`, two writes before and after each call, and the signed
//! answer), one after another from one till. Prints p50 and p99 of each.
//! `cargo bench -p tillpay-hq --bench relay`; `TILLPAY_BENCH_QUICK=1` for
//! 20 pays, as CI runs it.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tillpay::domain::{out_trade_no, AuthCode, Fen, Provider};
use tillpay::gateway::channel::ChannelConfig;
use tillpay::gateway::hq::{RelayConfig, RelayGateway};
use tillpay::gateway::{Gateway, PayAnswer, PayRequest};
use tillpay::sim::behaviour::Behaviour;
use tillpay_hq::{db, http, tills};

async fn pays(gw: &dyn Gateway, till: &str, prefix: &str, n: u64, serial: u64) -> Vec<Duration> {
    let mut took = Vec::new();
    for i in 0..n {
        let order = format!("{prefix}{i}");
        let code = Behaviour::PaysAtOnce.code(Provider::Wechat, serial + i);
        let req = PayRequest {
            out_trade_no: out_trade_no(till, &order, 1),
            order_no: order,
            seq: 1,
            amount: Fen(1234),
            auth_code: AuthCode::new(&code, Provider::Wechat),
            subject: "coffee".into(),
            operator_id: None,
        };
        let start = Instant::now();
        let a = gw.pay(&req).await;
        took.push(start.elapsed());
        assert!(matches!(a, PayAnswer::Paid(_)), "{a:?}");
    }
    took.sort();
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(v: &[Duration], p: usize) -> Duration {
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(base) = common::pg_base() else {
        println!("relay: skipped (no TILLPAY_HQ_PG; eval \"$(bash .ci/pg-start)\")");
        return;
    };
    let n = if std::env::var_os("TILLPAY_BENCH_QUICK").is_some() {
        20
    } else {
        500
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let sim = tillpay::sim::Simulator::start(Duration::from_millis(10)).await.expect("simulator");
        let wechat: Arc<dyn ChannelConfig> = Arc::new(sim.wechat_config(Duration::ZERO));
        let url = common::fresh_db(&base).await;
        let pool = db::pool(&url, 8).expect("pool");
        db::migrate(&pool).await.expect("migrate");
        let token = tills::add(&pool, "S1", "T1").await.expect("till");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hq = Arc::new(http::Hq {
            pool,
            api_token: "bench-api-token-0123456789abcdef".into(),
            relay: tillpay_hq::relay::Relay::new(vec![wechat.clone()], Duration::from_secs(8)),
            trust_forwarded_for: false,
            console_origin: None,
        });
        tokio::spawn(http::serve(listener, hq));
        let direct = wechat.gateway("T1", Duration::from_secs(5)).expect("direct");
        let relay = RelayGateway::new(
            &RelayConfig {
                url: format!("http://{addr}"),
                token,
                min_revoke_delay: Duration::ZERO,
            },
            "T1",
            Duration::from_secs(5),
        )
        .expect("relay");
        let straight = pays(direct.as_ref(), "T1", "D", n, 1).await;
        let through = pays(&relay, "T1", "R", n, 100_000).await;
        println!(
            "relay: {n} pays one after another: straight to the gateway p50 {:.2} ms, p99 {:.2} ms; through HQ p50 {:.2} ms, p99 {:.2} ms",
            ms(pct(&straight, 50)),
            ms(pct(&straight, 99)),
            ms(pct(&through, 50)),
            ms(pct(&through, 99)),
        );
    });
}
