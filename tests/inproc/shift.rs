//! A day of mixed sales by two cashiers through the POS socket, then the
//! Z-report: its totals are the simulator's ledger's, per provider and per
//! cashier; a paid sale's receipt shows what the customer paid and the
//! coupon; closing the shift keeps its report and opens the next.

use std::collections::BTreeMap;

use serde_json::json;
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::ledger::OrderState;

use crate::common::TestTill;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shift_report_matches_the_ledger_for_a_day_of_mixed_sales() {
    let till = TestTill::start(vec![], 0o600).await;
    let mut pos = till.connect().await;
    let behaviours = [
        Behaviour::PaysAtOnce,
        Behaviour::Coupon(3),
        Behaviour::InsufficientFunds,
        Behaviour::NeverConfirms,
        Behaviour::ConfirmsAfter(1),
    ];
    let mut id = 0;
    let mut paid = Vec::new();
    for i in 0..15u64 {
        let provider = if i % 2 == 0 {
            Provider::Wechat
        } else {
            Provider::Alipay
        };
        let b = behaviours[i as usize % behaviours.len()];
        let cashier = if i % 3 == 0 { "alice" } else { "bob" };
        id += 1;
        let order = format!("D{i}");
        let r = pos
            .call(
                id,
                "charge",
                json!({"order_no": order, "amount": 1000 + i * 10, "operator_id": cashier,
                       "auth_code": b.code(provider, 500 + i)}),
            )
            .await;
        let p = &r["result"];
        assert!(p.is_object(), "{r}");
        assert_eq!(p["operator_id"], cashier, "{r}");
        if p["status"] == "paid" {
            let receipt = &p["receipt"];
            assert_eq!(receipt["provider"], provider.as_str(), "{r}");
            assert_eq!(receipt["transaction_id"], p["transaction_id"], "{r}");
            let (amount, cust, disc) = (
                receipt["amount"].as_u64(),
                receipt["customer_paid"].as_u64(),
                receipt["discount"].as_u64(),
            );
            if b == Behaviour::Coupon(3) {
                assert_eq!(disc, Some(300), "{r}");
            }
            assert_eq!(cust.zip(disc).map(|(c, d)| c + d), amount, "{r}");
            assert!(
                receipt["payer"].as_str().is_some_and(|p| p.contains('*')),
                "{r}"
            );
            paid.push(order);
        } else {
            assert!(p["receipt"].is_null(), "no receipt for an unpaid sale: {r}");
        }
    }
    // Two refunds by a third cashier, one whole, one part.
    for (order, no, amount) in [(&paid[0], "R1", 1000), (&paid[1], "R2", 10)] {
        id += 1;
        let r = pos
            .call(
                id,
                "refund",
                json!({"order_no": order, "refund_no": no, "amount": amount, "operator_id": "carol"}),
            )
            .await;
        assert_eq!(r["result"]["status"], "refunded", "{r}");
    }
    id += 1;
    let bad = pos
        .call(
            id,
            "charge",
            json!({"order_no": "X", "amount": 1, "operator_id": "no spaces"}),
        )
        .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    id += 1;
    let r = pos.call(id, "shift.close", json!({})).await;
    let report = &r["result"];
    assert!(report.is_object(), "{r}");

    // What the simulator's ledger holds: money taken and kept, refunds landed.
    let orders = till.ledger.orders();
    let mut by_provider: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let (mut count, mut amount, mut refunded, mut revoked) = (0, 0, 0, 0);
    for o in &orders {
        let refund: u64 = o
            .refunds
            .iter()
            .filter(|r| r.landed())
            .map(|r| r.amount.0)
            .sum();
        refunded += refund;
        match o.state {
            OrderState::Paid => {
                count += 1;
                amount += o.amount.0;
                let e = by_provider.entry(o.provider.to_string()).or_default();
                e.0 += 1;
                e.1 += o.amount.0;
                e.2 += refund;
            }
            OrderState::Revoked(_) => revoked += 1,
            _ => {}
        }
    }
    assert!(
        count > 0 && revoked > 0 && refunded > 0,
        "a mixed day: {orders:#?}"
    );
    assert_eq!(
        report["sales"],
        json!({"count": count, "amount": amount}),
        "{report:#}"
    );
    assert_eq!(
        report["refunds"],
        json!({"count": 2, "amount": refunded}),
        "{report:#}"
    );
    assert_eq!(report["revoked"]["count"], revoked, "{report:#}");
    for (provider, (c, a, f)) in &by_provider {
        assert_eq!(
            report["by_provider"][provider],
            json!({"count": c, "amount": a, "refunded": f}),
            "{provider}: {report:#}"
        );
    }
    let cashiers: u64 = ["alice", "bob"]
        .iter()
        .map(|c| report["by_operator"][c]["amount"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        cashiers, amount,
        "every paid sale has its cashier: {report:#}"
    );
    assert_eq!(
        report["by_operator"]["carol"]["refunded"], refunded,
        "{report:#}"
    );
    assert_eq!(report["needs_attention"], 0);
    assert!(report["closed_at"].is_string() && report["first_sale"].is_string());

    // Kept: asked again by number it is the same report; the next is empty.
    let shift_no = report["shift_no"].as_i64().unwrap_or(0);
    id += 1;
    let kept = pos
        .call(id, "shift.report", json!({"shift_no": shift_no}))
        .await;
    let mut closed = report.clone();
    if let Some(o) = closed.as_object_mut() {
        o.remove("next_shift_no");
    }
    assert_eq!(kept["result"], closed);
    id += 1;
    let next = pos.call(id, "shift.report", json!({})).await;
    assert_eq!(next["result"]["shift_no"], shift_no + 1, "{next}");
    assert_eq!(
        next["result"]["sales"],
        json!({"count": 0, "amount": 0}),
        "{next}"
    );
    assert!(next["result"]["closed_at"].is_null());
}
