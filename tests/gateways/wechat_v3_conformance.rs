//! The v3 simulator speaks real WeChat Pay v3: the third-party Python
//! client `wechatpayv3` drives it (code pay, the 202 while the customer
//! confirms, query, reverse, refund and refund query) with its own signing
//! and its own answer verification in WeChat Pay public key mode, and a
//! client holding the wrong public key is refused by that verification.
//!
//! Needs a Python with `tests/conformance/requirements.txt` installed
//! (see `conformance_env`).

use crate::conformance_env;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::ledger::Ledger;
use tillpay::sim::wechat::v3::keys;

use crate::wechat_v3::start_v3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpayv3_drives_the_v3_simulator_with_its_own_verification() {
    let Some(python) = conformance_env::python("wechatpayv3") else {
        return;
    };
    let sim = start_v3(Arc::new(Ledger::new(Duration::from_millis(50)))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str, mode: u32| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p.display().to_string()
    };
    let key = write("apiclient_key.pem", keys::MERCHANT_PRIVATE_KEY_PEM, 0o600);
    let public = write("pub_key.pem", keys::WECHATPAY_PUBLIC_KEY_PEM, 0o644);
    let pays: Vec<String> = (0..3)
        .map(|i| Behaviour::PaysAtOnce.code(Provider::Wechat, 9_300 + i))
        .collect();
    let user_paying = Behaviour::NeverConfirms.code(Provider::Wechat, 9_400);
    let codes = serde_json::json!({ "pays": pays, "user_paying": user_paying }).to_string();
    conformance_env::run(
        &python,
        "wechat_v3_conformance.py",
        &[
            sim.base_url.as_str(),
            keys::APPID,
            keys::MCHID,
            &key,
            keys::MERCHANT_SERIAL,
            &public,
            keys::PUBLIC_KEY_ID,
            &codes,
        ],
        "all WeChat v3 conformance checks passed",
    )
    .await;

    // It really talked to this simulator: a code pay, a reverse, a refund,
    // each with its own Authorization; 10 fen paid less a 3 fen refund (in
    // flight or landed), the 2 fen never confirmed and reversed.
    let seen = sim.seen();
    for path in [
        "/v3/pay/transactions/codepay",
        "/v3/refund/domestic/refunds",
    ] {
        assert!(seen.iter().any(|s| s.path == path), "{path}");
    }
    assert!(seen.iter().any(|s| s.path.ends_with("/reverse")));
    assert!(seen
        .iter()
        .all(|s| s.authorization.starts_with("WECHATPAY2-SHA256-RSA2048 ")));
    let kept = sim.ledger.money_kept_with_prefix("CONFV3");
    assert!((7..=10).contains(&kept), "kept {kept}");
}
