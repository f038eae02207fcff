//! A way back to a sale in flight (docs/pos-protocol.md, "Following a
//! sale"): after a POS restart, `status` names the orders in flight, `list`
//! filters by status, and `watch` gives an order's Payment with the number
//! of the last notification it reflects, so a client can follow it from
//! there without polling. An operator's verdict is heard as a live sale's
//! end is.

use crate::common::{self, TestTill};

use serde_json::{json, Value};
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

fn code(b: Behaviour, p: Provider, serial: u64) -> String {
    b.code(p, serial)
}

/// Reads `c` until a `payment.event` of `order` that `f` accepts.
async fn event_of(c: &mut common::Conn, order: &str, f: impl Fn(&Value) -> bool) -> Value {
    loop {
        let msg = c.next().await.expect("connection open");
        if msg["method"] == "payment.event" && msg["params"]["order_no"] == order && f(&msg) {
            return msg;
        }
    }
}

#[tokio::test]
async fn a_pos_that_restarted_finds_the_sale_in_flight_and_follows_it_to_its_end() {
    let till = TestTill::start(vec![], 0o600).await;
    // A paid sale, and one whose customer is still confirming.
    let mut first = till.connect().await;
    let paid = code(Behaviour::PaysAtOnce, Provider::Alipay, 1);
    let r = first
        .call(
            1,
            "charge",
            json!({"order_no": "F1", "amount": 100, "auth_code": paid}),
        )
        .await;
    assert_eq!(r["result"]["status"], "paid", "{r}");
    let slow = code(Behaviour::ConfirmsAfter(8), Provider::Wechat, 2);
    first
        .send(json!({"jsonrpc": "2.0", "id": 2, "method": "charge", "params": {"order_no": "F2", "amount": 200, "auth_code": slow}}))
        .await;
    event_of(&mut first, "F2", |m| m["params"]["event"] == "submitted").await;
    // The POS restarts: its connection is gone, the sale goes on.
    drop(first);
    let mut pos = till.connect().await;
    let s = pos.call(3, "status", json!({})).await;
    assert_eq!(s["result"]["in_flight_orders"], json!(["F2"]), "{s}");
    let l = pos.call(4, "list", json!({"status": "paying"})).await;
    let orders: Vec<&str> = l["result"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["order_no"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(orders, ["F2"], "{l}");
    let l = pos.call(5, "list", json!({"status": "paid"})).await;
    assert_eq!(l["result"][0]["order_no"], "F1", "{l}");
    let bad = pos.call(6, "list", json!({"status": "maybe"})).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    // Follow F2: the Payment now, then its later events, by seq.
    let w = pos.call(7, "watch", json!({"order_no": "F2"})).await;
    assert_eq!(w["result"]["status"], "paying", "{w}");
    let seen = w["result"]["seq"].as_u64().expect("seq");
    let end = event_of(&mut pos, "F2", |m| {
        m["params"]["seq"].as_u64() > Some(seen) && m["params"]["event"] == "paid"
    })
    .await;
    // The event that ended it is what the journal now says.
    let q = pos.call(10, "query", json!({"order_no": "F2"})).await;
    assert_eq!(q["result"]["status"], "paid", "{end} then {q}");
    assert_eq!(
        q["result"]["out_trade_no"], end["params"]["out_trade_no"],
        "{q}"
    );
    let s = pos.call(8, "status", json!({})).await;
    assert_eq!(s["result"]["in_flight_orders"], json!([]), "{s}");
    let unknown = pos.call(9, "watch", json!({"order_no": "NOPE"})).await;
    assert_eq!(unknown["error"]["code"], 1005, "{unknown}");
}

#[tokio::test]
async fn an_operators_verdict_is_heard_by_a_listening_pos() {
    let till = TestTill::start(vec![], 0o600).await;
    let mut pos = till.connect().await;
    let stuck = code(Behaviour::RevokeFails, Provider::Alipay, 3);
    let r = pos
        .call(
            1,
            "charge",
            json!({"order_no": "F3", "amount": 300, "auth_code": stuck}),
        )
        .await;
    assert_eq!(r["result"]["status"], "needs_attention", "{r}");
    let mut listener = till.connect().await;
    let mut ops = till.connect().await;
    let r = ops
        .call(
            2,
            "resolve",
            json!({"order_no": "F3", "as": "unpaid", "operator": "ops", "note": "portal: closed"}),
        )
        .await;
    assert_eq!(r["result"]["status"], "failed", "{r}");
    let heard = event_of(&mut listener, "F3", |m| m["params"]["event"] == "failed").await;
    assert_eq!(heard["params"]["resolved_by"], "ops", "{heard}");
}
