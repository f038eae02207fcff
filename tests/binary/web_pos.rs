//! The example web POS (`examples/web-pos/`) in a real headless Chromium,
//! driven by Playwright (`tests/browser/web_pos.mjs`) against `tillpay dev`
//! with its browser interface: a scanned sale with its receipt, a cancel
//! that revokes, a refund, the shift report and its close, and pages of
//! another origin or with a wrong token that cannot charge. Screenshots
//! stay in `target/tmp/web-pos/`.

use std::path::Path;

/// What the browser test needs, or `None` off CI when something is missing
/// (`.ci/run` installs Chromium and the script's npm packages).
fn browser_tools() -> Option<()> {
    let here = env!("CARGO_MANIFEST_DIR");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let chromium = Path::new("/usr/bin/chromium").exists();
    let playwright = Path::new(here)
        .join("tests/browser/node_modules/playwright-core")
        .exists();
    if node && chromium && playwright {
        return Some(());
    }
    let missing = format!(
        "node: {node}, /usr/bin/chromium: {chromium}, tests/browser/node_modules: {playwright}"
    );
    if std::env::var_os("CI").is_some() {
        panic!("the browser test cannot run ({missing}): bash .ci/run installs them");
    }
    eprintln!(
        "notice: web POS browser test skipped ({missing}); run `npm ci --prefix tests/browser`"
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_web_pos_sells_cancels_refunds_and_closes_the_shift_in_chromium() {
    if browser_tools().is_none() {
        return;
    }
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-pos");
    let _ = std::fs::remove_dir_all(&shots);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/web_pos.mjs");
    let run = tokio::process::Command::new("node")
        .arg(script)
        .env("TILLPAY_BIN", env!("CARGO_BIN_EXE_tillpay"))
        .env("SHOTS", &shots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(240), run)
        .await
        .expect("the browser test ends in time")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "web POS test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("refused pages charged nothing"), "{stdout}");
    for name in [
        "web-pos.png",
        "web-pos-paid.png",
        "web-pos-refused-another-origin.png",
    ] {
        let png = std::fs::read(shots.join(name)).expect("a screenshot is kept");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{name}"
        );
    }
}
