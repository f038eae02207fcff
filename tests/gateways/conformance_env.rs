//! Which Python runs the third-party conformance clients: the
//! `TILLPAY_CONFORMANCE_PYTHON` variable, else the virtualenv `.ci/run`
//! makes (`.venv/` in the checkout), so a plain `cargo test` after one CI run
//! runs them too. Neither: a failure under CI (env `CI`), a notice otherwise.

pub fn python(client: &str) -> Option<String> {
    if let Ok(p) = std::env::var("TILLPAY_CONFORMANCE_PYTHON") {
        if !p.is_empty() {
            return Some(p);
        }
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    if std::path::Path::new(venv).exists() {
        return Some(venv.to_string());
    }
    if std::env::var_os("CI").is_some() {
        panic!("no Python for the {client} conformance test: CI must run it (bash .ci/run makes .venv)");
    }
    // Straight to stderr: the test harness would swallow eprintln!.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "notice: {client} conformance test skipped; run `bash .ci/run` once, or set \
             TILLPAY_CONFORMANCE_PYTHON to a python with tests/conformance/requirements.txt\n"
        )
        .as_bytes(),
    );
    None
}

/// Runs a conformance script (`tests/conformance/<script>`) with `python`
/// and `args`, within two minutes, and returns its output once it exited
/// 0 and printed `passed` (the script's own last line).
pub async fn run(python: &str, script: &str, args: &[&str], passed: &str) -> String {
    let path = format!("{}/tests/conformance/{script}", env!("CARGO_MANIFEST_DIR"));
    let child = tokio::process::Command::new(python)
        .arg(&path)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python:?}: {e}"));
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} did not finish within 120 s"))
    .unwrap_or_else(|e| panic!("{script} did not run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(passed),
        "{script}: no {passed:?} in\n{stdout}"
    );
    stdout
}
