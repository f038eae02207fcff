//! Crash tests: kill -9 the daemon while attempts are submitting, paying
//! and revoking; restart it; every sale ends final and consistent with the
//! simulator's ledger. A loop over random kill points is seeded; the seed
//! is printed with every failure (set TILLPAY_CRASH_SEED to replay one).

use crate::common;
use crate::till;

use std::time::Duration;

use serde_json::{json, Value};
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::WechatApi;

use till::{E2eTill, Rng, Speed, FINAL};

/// Starts sales without waiting for their answers (their client dies with
/// the daemon anyway).
async fn start_sales(t: &E2eTill, sales: &[(String, u64, String)]) -> Vec<common::Conn> {
    let mut conns = Vec::new();
    for (order, amount, code) in sales {
        let mut c = t.pos().await;
        c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": order, "amount": amount, "auth_code": code}}))
            .await;
        conns.push(c);
    }
    conns
}

/// After the restart: every sale must reach a final status, agreeing with
/// the ledger.
async fn settle(t: &E2eTill, sales: &[(String, u64, String)], context: &str) {
    let mut c = t.pos().await;
    for (i, (order, _, code)) in sales.iter().enumerate() {
        let mut last = Value::Null;
        // Up to 45 s: a revoke that retries, on a machine busy with the
        // other test binaries (a browser among them), takes its time.
        for _ in 0..900 {
            last = c.call(i as i64, "query", json!({"order_no": order})).await;
            if last.get("error").is_some() {
                // Killed before the sale reached the journal: nothing may have been charged.
                assert_eq!(last["error"]["code"], 1005, "{context}: {last}");
                let kept = t.sim.ledger.money_kept_with_prefix(&format!("T1_{order}_"));
                assert_eq!(
                    kept, 0,
                    "{context}: {order} unknown to the journal but money kept"
                );
                break;
            }
            if FINAL.contains(&last["result"]["status"].as_str().unwrap_or("")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if last.get("error").is_some() {
            continue;
        }
        let p = &last["result"];
        let status = p["status"].as_str().unwrap_or("");
        assert!(
            FINAL.contains(&status),
            "{context}: {order} still {status}\n{}",
            t.log()
        );
        if status == "needs_attention" {
            assert_eq!(
                Behaviour::of_code(code),
                Behaviour::RevokeFails,
                "{context}: {order} needs attention: {p}"
            );
        }
        let otn = p["out_trade_no"].as_str().unwrap_or("").to_string();
        t.assert_ledger_agrees(&otn, p);
    }
}

fn sale(order: &str, provider: Provider, b: Behaviour, serial: u64) -> (String, u64, String) {
    (
        order.to_string(),
        100 + serial % 900,
        b.code(provider, serial),
    )
}

#[tokio::test]
async fn killed_mid_sale_on_wechat_api_v3_every_sale_settles_after_the_restart() {
    // The same recovery on v3: its 202 while the customer confirms, its
    // query and reverse, after SIGKILL at each stage.
    for (b, kill_ms) in [
        (Behaviour::AnswerLost, 0),
        (Behaviour::NeverConfirms, 600),
        (Behaviour::ConfirmsAfter(3), 600),
        (Behaviour::RevokeRetries(2), 2150),
    ] {
        let mut t = E2eTill::start_api(Speed::Fast, WechatApi::V3, |_, t| t).await;
        let sales = vec![sale("V1", Provider::Wechat, b, 7)];
        let conns = start_sales(&t, &sales).await;
        tokio::time::sleep(Duration::from_millis(kill_ms)).await;
        t.kill9();
        drop(conns);
        t.spawn().await;
        settle(&t, &sales, &format!("v3 {b:?} killed at {kill_ms} ms")).await;
        t.stop().await;
    }
}

#[tokio::test]
async fn killed_while_submitting_paying_and_revoking() {
    // (behaviour, when to kill): in flight at 0 ms, polling at 600 ms,
    // revoking past the 2 s deadline.
    for (b, kill_ms) in [
        (Behaviour::ConfirmsAfter(2), 0),
        (Behaviour::AnswerLost, 0),
        (Behaviour::NeverConfirms, 600),
        (Behaviour::ConfirmsAfter(3), 600),
        (Behaviour::RevokeRetries(2), 2150),
        (Behaviour::NeverConfirms, 2050),
    ] {
        let mut t = E2eTill::start(Speed::Fast).await;
        let sales = vec![
            sale("K1", Provider::Wechat, b, 1),
            sale("K2", Provider::Alipay, b, 2),
        ];
        let conns = start_sales(&t, &sales).await;
        tokio::time::sleep(Duration::from_millis(kill_ms)).await;
        t.kill9();
        drop(conns);
        t.spawn().await;
        settle(&t, &sales, &format!("{b:?} killed at {kill_ms} ms")).await;
        t.stop().await;
    }
}

#[tokio::test]
async fn killed_at_random_points() {
    let seed = std::env::var("TILLPAY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("crash seed {seed} (replay with TILLPAY_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    for round in 0..4 {
        let mut t = E2eTill::start(Speed::Fast).await;
        let sales: Vec<_> = (0..6)
            .map(|i| {
                let (provider, b) = till::random_customer(&mut rng);
                sale(
                    &format!("R{round}S{i}"),
                    provider,
                    b,
                    rng.next() % 1_000_000,
                )
            })
            .collect();
        let conns = start_sales(&t, &sales).await;
        let kill_ms = rng.below(3000);
        tokio::time::sleep(Duration::from_millis(kill_ms)).await;
        t.kill9();
        drop(conns);
        // Sometimes a second crash during recovery.
        if rng.below(3) == 0 {
            t.spawn().await;
            tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
            t.kill9();
        }
        t.spawn().await;
        let context = format!("seed {seed} round {round} kill at {kill_ms} ms, sales {sales:?}");
        settle(&t, &sales, &context).await;
        t.stop().await;
    }
}

/// Polls `query` until `done` accepts the Payment (or 15 s pass).
async fn wait_for(t: &E2eTill, order: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut c = t.pos().await;
    let mut last = Value::Null;
    for i in 0..300 {
        last = c.call(i, "query", json!({"order_no": order})).await;
        if done(&last["result"]) {
            return last["result"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{order}: never got there: {last}\n{}", t.log())
}

#[tokio::test]
async fn killed_with_a_refund_in_flight_the_refund_is_confirmed_after_the_restart() {
    let mut t = E2eTill::start(Speed::Fast).await;
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 77);
    let mut pos = t.pos().await;
    let paid = pos
        .call(
            1,
            "charge",
            json!({"order_no": "RF1", "amount": 1000, "auth_code": code}),
        )
        .await;
    assert_eq!(paid["result"]["status"], "paid", "{paid}");
    let otn = paid["result"]["out_trade_no"]
        .as_str()
        .unwrap_or("")
        .to_string();
    // WeChat accepts the refund; it lands a second later.
    let r = pos
        .call(
            2,
            "refund",
            json!({"order_no": "RF1", "refund_no": "BACK1", "amount": 400}),
        )
        .await;
    assert_eq!(r["result"]["status"], "processing", "{r}");
    t.kill9();
    drop(pos);
    t.spawn().await;
    // Nobody resends it: the restarted daemon confirms it by itself.
    let p = wait_for(&t, "RF1", |p| p["refunded_amount"] == 400).await;
    assert_eq!(p["status"], "paid");
    assert_eq!(t.sim.ledger.money_kept(&otn), 600);
    let order = t.sim.ledger.order(&otn).expect("order");
    assert_eq!(order.refunds.len(), 1, "refunded once");
    t.stop().await;
}

#[tokio::test]
async fn a_payment_made_while_the_till_was_down_is_found_paid_after_the_deadline() {
    // The money is taken but the answer never arrives; the till dies with
    // the pay request in flight and stays down past the 2 s deadline. On
    // restart it asks first: paid, and nothing is revoked.
    let mut t = E2eTill::start(Speed::Fast).await;
    let code = Behaviour::AnswerLost.code(Provider::Alipay, 78);
    let conns = start_sales(&t, &[("LATE1".into(), 880, code)]).await;
    let otn = "T1_LATE1_1";
    for _ in 0..200 {
        if t.sim.ledger.money_kept(otn) == 880 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(t.sim.ledger.money_kept(otn), 880, "the customer paid");
    t.kill9();
    drop(conns);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    t.spawn().await;
    let p = wait_for(&t, "LATE1", |p| p["status"] != "paying").await;
    assert_eq!(p["status"], "paid", "{p}");
    let order = t.sim.ledger.order(otn).expect("order");
    assert_eq!(order.revoke_calls, 0, "nothing revoked");
    assert_eq!(t.sim.ledger.money_kept(otn), 880);
    t.stop().await;
}
