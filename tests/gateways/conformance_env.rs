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
