//! HQ's ingest rate: events per second from 100 tills posting batches at
//! once over real HTTP into PostgreSQL (`TILLPAY_HQ_PG`, the cluster
//! `.ci/pg-start` runs). Each event is a paid sale with its order's rows,
//! as a till sends it. `cargo bench -p tillpay-hq --bench ingest`;
//! `TILLPAY_BENCH_QUICK=1` for 10 tills, as CI runs it.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tillpay::sync::wire::{Attempt, Batch, Event, OrderSnapshot, Sale};
use tillpay_hq::{db, http, tills};

fn paid_sale(till: &str, id: i64) -> (Event, OrderSnapshot) {
    let order = format!("S{id}");
    let at = 1_796_000_000_000 + id * 1000;
    let event = Event {
        id,
        at,
        order_no: order.clone(),
        out_trade_no: Some(format!("{till}_{order}_1")),
        kind: "paid".into(),
        detail: json!({}),
    };
    let snapshot = OrderSnapshot {
        order_no: order.clone(),
        version: id,
        sale: Sale {
            amount: 1234,
            subject: "2 coffees".into(),
            local_date: "2026-12-01".into(),
            created_at: at - 900,
            cancelled: false,
            cancel_reason: None,
            operator_id: Some("alice".into()),
        },
        attempts: vec![Attempt {
            out_trade_no: format!("{till}_{order}_1"),
            seq: 1,
            provider: "wechat".into(),
            channel: "wechat".into(),
            amount: 1234,
            code_masked: "1345**********6789".into(),
            phase: "paid".into(),
            submitted_at: at - 800,
            updated_at: at,
            transaction_id: Some(format!("4200{id:024}")),
            paid_at: Some("2026-12-01T10:00:10+08:00".into()),
            booked_amount: Some(1234),
            customer_paid: Some(1234),
            discount: None,
            payer: Some("oUpF****eS6o".into()),
            error_code: None,
            error_message: None,
            revoke_tries: 0,
            revoke_effect: None,
        }],
        refunds: vec![],
    };
    (event, snapshot)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(base) = common::pg_base() else {
        println!("ingest: skipped (no TILLPAY_HQ_PG; eval \"$(bash .ci/pg-start)\")");
        return;
    };
    let quick = std::env::var_os("TILLPAY_BENCH_QUICK").is_some();
    let (tills_n, batches) = if quick { (10, 2) } else { (100, 10) };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let url = common::fresh_db(&base).await;
        let pool = db::pool(&url, 32).expect("pool");
        db::migrate(&pool).await.expect("migrate");
        let mut tokens = Vec::new();
        for i in 0..tills_n {
            let till = format!("T{i}");
            let token = tills::add(&pool, &format!("S{}", i % 10), &till)
                .await
                .expect("till");
            tokens.push((till, token));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hq = Arc::new(http::Hq {
            pool: pool.clone(),
            api_token: "bench-api-token-0123456789abcdef".into(),
            relay: tillpay_hq::relay::Relay::new(Vec::new(), Duration::from_secs(8)),
            trust_forwarded_for: false,
            console_origin: None,
        });
        tokio::spawn(http::serve(listener, hq));
        let per_batch = tillpay::sync::wire::MAX_EVENTS as i64;
        let start = Instant::now();
        let mut runs = Vec::new();
        for (till, token) in tokens {
            runs.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                for b in 0..batches {
                    let after = b * per_batch;
                    let (events, orders) = (after + 1..=after + per_batch)
                        .map(|id| paid_sale(&till, id))
                        .unzip();
                    let batch = Batch {
                        till_id: till.clone(),
                        after,
                        events,
                        orders,
                        done: vec![],
        shifts: vec![],
                    };
                    let res = client
                        .post(format!("http://{addr}/v1/sync"))
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&batch).expect("encode"))
                        .send()
                        .await
                        .expect("post");
                    assert!(res.status().is_success(), "{}", res.text().await.unwrap_or_default());
                }
            }));
        }
        for r in runs {
            r.await.expect("till");
        }
        let took = start.elapsed();
        let events = tills_n as i64 * batches * per_batch;
        let stored: i64 = pool
            .get()
            .await
            .expect("client")
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(stored, events);
        println!(
            "ingest: {events} events (each a paid sale with its rows) from {tills_n} tills at once, \
             {per_batch} per batch: {:.1} s, {:.0} events/s",
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64()
        );
    });
}
