//! The real daemon against the simulator's harder customers and refusals:
//! a customer who gives up on the phone, a bank that fails, a reverse
//! refused while the customer is on the password screen, refunds that are
//! processed before they end. Every sale ends paid, or unpaid with no money
//! kept, and no reverse ever comes sooner than the configured minimum.

use crate::till;

use serde_json::json;
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

use till::{E2eTill, Speed};

/// Charges `order` with the code of `b` and returns the final Payment,
/// after checking the gateway's ledger agrees with it.
async fn sale(
    t: &E2eTill,
    provider: Provider,
    b: Behaviour,
    order: &str,
    serial: u64,
) -> serde_json::Value {
    let code = b.code(provider, serial);
    let mut pos = t.pos().await;
    let p = pos
        .call(
            1,
            "charge",
            json!({"order_no": order, "amount": 1500, "auth_code": code}),
        )
        .await;
    let p = p["result"].clone();
    let otn = p["out_trade_no"].as_str().unwrap_or_default().to_string();
    t.assert_ledger_agrees(&otn, &p);
    p
}

fn revokes(t: &E2eTill, p: &serde_json::Value) -> u32 {
    let otn = p["out_trade_no"].as_str().unwrap_or_default();
    t.sim.ledger.order(otn).map_or(0, |o| o.revoke_calls)
}

#[tokio::test]
async fn a_customer_who_gives_up_or_a_failing_bank_ends_the_sale_unpaid() {
    let t = E2eTill::start(Speed::Fast).await;
    // WeChat: the query turns to PAYERROR and the order is still reversed,
    // to close the loop, no sooner than the minimum after the pay.
    for (i, b) in [Behaviour::GivesUp(1), Behaviour::BankError]
        .into_iter()
        .enumerate()
    {
        let p = sale(&t, Provider::Wechat, b, &format!("GW{i}"), 100 + i as u64).await;
        assert_eq!(p["status"], "revoked", "{b:?}: {p}");
        assert_eq!(revokes(&t, &p), 1, "{b:?}: reversed once");
    }
    // Alipay: the query says TRADE_CLOSED, which is final: nothing to revoke.
    for (i, b) in [Behaviour::GivesUp(1), Behaviour::BankError]
        .into_iter()
        .enumerate()
    {
        let p = sale(&t, Provider::Alipay, b, &format!("GA{i}"), 110 + i as u64).await;
        assert_eq!(p["status"], "failed", "{b:?}: {p}");
        assert_eq!(revokes(&t, &p), 0, "{b:?}");
    }
    assert_eq!(t.sim.ledger.early_reverses(), 0, "no reverse came too soon");
    t.stop().await;
}

#[tokio::test]
async fn a_reverse_refused_while_the_customer_is_paying_is_retried_until_it_closes() {
    let t = E2eTill::start(Speed::Fast).await;
    // Two USERPAYING refusals, within the till's 3 revoke attempts.
    let p = sale(
        &t,
        Provider::Wechat,
        Behaviour::ReverseWhilePaying(2),
        "RW1",
        120,
    )
    .await;
    assert_eq!(p["status"], "revoked", "{p}");
    assert_eq!(revokes(&t, &p), 3);
    assert_eq!(t.sim.ledger.early_reverses(), 0);
    t.stop().await;
}

/// Refunds `amount` of a paid `order` and waits for its `refund.event`.
async fn refund_and_wait(
    t: &E2eTill,
    order: &str,
    refund_no: &str,
) -> (serde_json::Value, serde_json::Value) {
    let mut pos = t.pos().await;
    let first = pos
        .call(
            2,
            "refund",
            json!({"order_no": order, "refund_no": refund_no, "amount": 500}),
        )
        .await;
    let event = till::next_matching(&mut pos, |m| {
        m["method"] == "refund.event" && m["params"]["refund_no"] == refund_no
    })
    .await;
    (first["result"].clone(), event["params"].clone())
}

#[tokio::test]
async fn wechat_refunds_are_confirmed_through_processing_to_their_end() {
    let t = E2eTill::start(Speed::Fast).await;
    // Accepted, PROCESSING for a while, then SUCCESS.
    let p = sale(&t, Provider::Wechat, Behaviour::PaysAtOnce, "RF1", 130).await;
    assert_eq!(p["status"], "paid");
    let (first, end) = refund_and_wait(&t, "RF1", "B1").await;
    assert_eq!(first["status"], "processing", "{first}");
    assert_eq!(end["status"], "refunded", "{end}");
    let otn = p["out_trade_no"].as_str().unwrap_or_default();
    assert_eq!(t.sim.ledger.money_kept(otn), 1000);
    // The refund answer says SYSTEMERROR, yet the refund went through: the
    // till asks, and finds it; the money goes back once.
    let p = sale(
        &t,
        Provider::Wechat,
        Behaviour::RefundSystemError,
        "RF2",
        131,
    )
    .await;
    let (_, end) = refund_and_wait(&t, "RF2", "B2").await;
    assert_eq!(end["status"], "refunded", "{end}");
    let otn = p["out_trade_no"].as_str().unwrap_or_default();
    let order = t.sim.ledger.order(otn).expect("order");
    assert_eq!(order.refunds.len(), 1, "refunded once");
    // PROCESSING, then REFUNDCLOSE: the money never went back, and the
    // cashier is told the refund failed.
    let p = sale(&t, Provider::Wechat, Behaviour::RefundCloses, "RF3", 132).await;
    let (_, end) = refund_and_wait(&t, "RF3", "B3").await;
    assert_eq!(end["status"], "failed", "{end}");
    let otn = p["out_trade_no"].as_str().unwrap_or_default();
    assert_eq!(t.sim.ledger.money_kept(otn), 1500, "nothing went back");
    t.stop().await;
}

#[tokio::test]
async fn slow_answers_proxy_error_pages_and_unsigned_failures_end_right() {
    let t = E2eTill::start(Speed::Fast).await;
    for (i, provider) in [Provider::Wechat, Provider::Alipay].into_iter().enumerate() {
        let n = 140 + 10 * i as u64;
        // 9 units of 200 ms: past the till's 1 s HTTP timeout, so unknown,
        // then the query finds it paid.
        let p = sale(&t, provider, Behaviour::SlowAnswer(9), &format!("S{i}"), n).await;
        assert_eq!(p["status"], "paid", "{provider} slow: {p}");
        // A 502 page after the request left: unknown, then paid.
        let p = sale(&t, provider, Behaviour::BadGateway, &format!("B{i}"), n + 1).await;
        assert_eq!(p["status"], "paid", "{provider} 502: {p}");
        // An unsigned failure proves nothing; the query shows it failed.
        let p = sale(&t, provider, Behaviour::SystemBusy, &format!("U{i}"), n + 2).await;
        let want = if provider == Provider::Wechat {
            "revoked"
        } else {
            "failed"
        };
        assert_eq!(p["status"], want, "{provider} busy: {p}");
    }
    t.stop().await;
}
