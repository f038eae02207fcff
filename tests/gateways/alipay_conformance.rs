//! The simulator speaks real Alipay: python-alipay-sdk (a third-party
//! client) drives it and verifies its answers with its own code.
//!
//! Needs a Python with `tests/conformance/requirements.txt` installed
//! (see `conformance_env`).

use crate::conformance_env;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tillpay::domain::Provider;
use tillpay::sim::alipay::keys::{
    DEMO_APP_ID, DEMO_APP_PRIVATE_KEY_PEM, DEMO_APP_PUBLIC_KEY_PEM, SIM_PUBLIC_KEY_PEM,
};
use tillpay::sim::alipay::AlipaySim;
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::ledger::{Ledger, OrderState};

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_alipay_sdk_accepts_the_simulator() {
    let Some(python) = conformance_env::python("python-alipay-sdk") else {
        return;
    };
    let ledger = Arc::new(Ledger::new(Duration::from_millis(50)));
    let sim = Arc::new(
        AlipaySim::demo(ledger.clone())
            .expect("sim")
            .with_same_day_bills(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(tillpay::sim::http::serve(listener, sim));

    let dir = tempfile::tempdir().expect("tempdir");
    let app_key = write(dir.path(), "app.pem", DEMO_APP_PRIVATE_KEY_PEM, 0o600);
    let alipay_key = write(dir.path(), "alipay.pem", SIM_PUBLIC_KEY_PEM, 0o644);
    let app_public = write(dir.path(), "app_pub.pem", DEMO_APP_PUBLIC_KEY_PEM, 0o644);
    let code = |b: Behaviour, n| b.code(Provider::Alipay, n);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/alipay_conformance.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--gateway", &format!("http://{addr}/gateway.do")])
        .args(["--app-id", DEMO_APP_ID])
        .arg("--app-key")
        .arg(&app_key)
        .arg("--alipay-key")
        .arg(&alipay_key)
        .arg("--app-public-key")
        .arg(&app_public)
        .args(["--code-paid", &code(Behaviour::PaysAtOnce, 1)])
        .args(["--code-paying", &code(Behaviour::NeverConfirms, 2)])
        .args(["--code-poor", &code(Behaviour::InsufficientFunds, 3)])
        .args(["--code-refund", &code(Behaviour::PaysAtOnce, 4)])
        .args([
            "--bill-date",
            &chrono::Local::now()
                .date_naive()
                .format("%Y-%m-%d")
                .to_string(),
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the script finished in time")
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "python-alipay-sdk refused the simulator ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("8 ok, 0 failing"), "{stdout}");

    // What the SDK did shows in the ledger: one order paid and kept, one
    // refunded by cancel, one closed, one partly refunded.
    let order = |otn: &str| {
        ledger
            .order(otn)
            .unwrap_or_else(|| panic!("no order {otn}"))
    };
    assert_eq!(order("CONF_PAY_1").money_kept(), 0);
    assert_eq!(order("CONF_PAY_1").charges, 1);
    assert_eq!(order("CONF_PAY_2").charges, 0);
    assert!(matches!(order("CONF_PAY_2").state, OrderState::Revoked(_)));
    assert_eq!(order("CONF_PAY_3").state, OrderState::Failed);
    assert_eq!(order("CONF_PAY_4").money_kept(), 400);
    assert_eq!(order("CONF_PAY_4").device, "CONF-T1");
}
