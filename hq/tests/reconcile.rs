//! `tillpay-hq reconcile`: the merchant's bills, fetched once from the
//! simulator with HQ's own credentials, against every till's rows at HQ.
//! A till that syncs matches; a registered till that never synced shows
//! its payment missing at HQ and is named as not synced; a payment of a
//! till HQ has never heard of is reported as such.

mod common;

use std::time::Duration;

use common::{HqProcess, TillProcess};
use serde_json::{json, Value};
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

async fn charge(till: &TillProcess, order: &str, b: Behaviour, p: Provider, serial: u64) -> Value {
    let mut pos = till.pos().await;
    pos.call(
        "charge",
        json!({"order_no": order, "amount": 500 + serial, "auth_code": b.code(p, serial)}),
        |_| {},
    )
    .await
    .expect("charge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleets_bills_find_the_payment_no_till_synced() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let db = common::fresh_db(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = tillpay::sim::Simulator::start(Duration::from_millis(10))
        .await
        .expect("simulator");
    // HQ holds the merchant's keys for the bills: the same tables as a till.
    let cfg = common::hq_config_with_gateways(dir.path(), &db, 0, &sim, 0, "");
    let hq = HqProcess::start(&cfg);
    let t1_token = common::add_till(&cfg, "S1", "T1");
    let t9_token = common::add_till(&cfg, "S1", "T9");
    let t1 = TillProcess::start(&sim, "T1", &hq.url(), &t1_token).await;
    // T9 is registered but never reaches HQ; T7 is not registered at all.
    let t9 = TillProcess::start(&sim, "T9", "http://127.0.0.1:9", &t9_token).await;
    let t7 = TillProcess::start(&sim, "T7", "http://127.0.0.1:9", &t9_token).await;
    for (i, p) in [
        Provider::Wechat,
        Provider::Alipay,
        Provider::Wechat,
        Provider::Alipay,
    ]
    .into_iter()
    .enumerate()
    {
        let paid = charge(
            &t1,
            &format!("A{i}"),
            Behaviour::PaysAtOnce,
            p,
            10 + i as u64,
        )
        .await;
        assert_eq!(paid["status"], "paid", "{paid}");
    }
    let declined = charge(
        &t1,
        "NO1",
        Behaviour::InsufficientFunds,
        Provider::Wechat,
        20,
    )
    .await;
    assert_eq!(declined["status"], "failed", "{declined}");
    let lost = charge(&t9, "N9", Behaviour::PaysAtOnce, Provider::Wechat, 30).await;
    assert_eq!(lost["status"], "paid", "{lost}");
    let stranger = charge(&t7, "N7", Behaviour::PaysAtOnce, Provider::Alipay, 40).await;
    assert_eq!(stranger["status"], "paid", "{stranger}");
    // T1 syncs everything.
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while common::get(&hq.url(), "/v1/sales?till=T1")
        .await
        .as_array()
        .map_or(0, Vec::len)
        < 5
    {
        assert!(
            std::time::Instant::now() < end,
            "T1 never synced: {}",
            t1.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let out = std::process::Command::new(common::hq_bin())
        .args(["reconcile", "--config"])
        .arg(&cfg)
        .args(["--date", &today, "--json"])
        .output()
        .expect("reconcile");
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{text}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "{report}");
    let till = |id: &str| {
        report["tills"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["till_id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let t1r = till("T1");
    assert_eq!(t1r["discrepancies"], json!([]), "{report}");
    assert!(t1r["matched"].as_u64().unwrap_or(0) >= 4, "{report}");
    // The payment T9 took is in the bill but not at HQ.
    let t9r = till("T9");
    let missing = t9r["discrepancies"].as_array().cloned().unwrap_or_default();
    assert_eq!(missing.len(), 1, "{report}");
    assert_eq!(missing[0]["kind"], "missing_local", "{report}");
    assert_eq!(missing[0]["out_trade_no"], lost["out_trade_no"], "{report}");
    assert!(
        report["not_synced"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n["till_id"] == "T9")),
        "{report}"
    );
    // T7's payment: a till HQ has never heard of.
    let unknown = report["unknown_till_rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(unknown.len(), 1, "{report}");
    assert_eq!(unknown[0]["till"], "T7", "{report}");
    assert_eq!(
        unknown[0]["out_trade_no"], stranger["out_trade_no"],
        "{report}"
    );
    // The table says the same, in words.
    let out = std::process::Command::new(common::hq_bin())
        .args(["reconcile", "--config"])
        .arg(&cfg)
        .args(["--date", &today])
        .output()
        .expect("reconcile");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("a till HQ does not know")
            && table.contains("till T9 (store S1) has not synced"),
        "{table}"
    );
    let out = std::process::Command::new(common::hq_bin())
        .args(["reconcile", "--config"])
        .arg(&cfg)
        .args(["--date", "yesterday"])
        .output()
        .expect("reconcile");
    assert_eq!(out.status.code(), Some(2));
}
