//! The simulator speaks real WeChat: the third-party Python client wechatpy
//! drives it (micropay, orderquery, reverse, both sign types, errors) with
//! its own signing, and checks that the answers verify with its own
//! signature functions. tillpay agreeing with itself would prove nothing.
//!
//! Needs a Python with `tests/conformance/requirements.txt` installed
//! (see `conformance_env`).

use crate::conformance_env;
use crate::wechat_support;

use std::time::Duration;

use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;
use wechat_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpy_drives_the_simulator() {
    let Some(python) = conformance_env::python("wechatpy") else {
        return;
    };
    let sim = start_sim(Duration::from_millis(50)).await;
    let pays: Vec<String> = (0..3)
        .map(|i| Behaviour::PaysAtOnce.code(Provider::Wechat, 9_000 + i))
        .collect();
    let user_paying = Behaviour::NeverConfirms.code(Provider::Wechat, 9_100);
    let codes = serde_json::json!({ "pays": pays, "user_paying": user_paying }).to_string();
    conformance_env::run(
        &python,
        "wechat_conformance.py",
        &[&sim.base_url, APPID, MCH_ID, API_KEY, &codes],
        "all WeChat conformance checks passed",
    )
    .await;

    // The script really talked to this simulator: of its three payments one
    // was reversed, one never confirmed, and the HMAC one (3 fen) was kept.
    let requests = sim.recorder.requests();
    assert!(requests.iter().any(|(p, _)| p == "/secapi/pay/reverse"));
    assert!(requests
        .iter()
        .any(|(_, f)| f.get("sign_type").map(String::as_str) == Some("HMAC-SHA256")));
    assert_eq!(sim.ledger.money_kept_with_prefix("CONF"), 3);
}
