//! The operators' console in a real headless Chromium (Debian's, driven by
//! Playwright: `tests/browser/console.mjs`) against a real `tillpay-hq` on
//! PostgreSQL, with a real till synced to it: log in, find a sale, resolve
//! an attention item and see the till's journal record it, refund, read
//! the day's reconciliation and totals; a viewer cannot refund; a form
//! posted from another site is refused; the admin reads it all in the
//! audit log. Screenshots stay in `target/tmp/console/`. Without a
//! browser (off CI) the HTTP checks still run.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{HqProcess, TillProcess};
use serde_json::json;
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

const PASSWORD: &str = "a long passphrase 42";

fn account(cfg: &Path, user: &str, role: &str) {
    let mut child = std::process::Command::new(common::hq_bin())
        .args(["account", "set", "--config"])
        .arg(cfg)
        .args(["--user", user, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("account set");
    use std::io::Write;
    writeln!(child.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
    let out = child.wait_with_output().expect("account set");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn browser_tools() -> bool {
    let here =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/node_modules/playwright-core");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let ok = node && Path::new("/usr/bin/chromium").exists() && here.exists();
    assert!(ok || std::env::var_os("CI").is_none(), "CI: node, /usr/bin/chromium and tests/browser/node_modules are needed (bash .ci/run installs them)");
    if !ok {
        eprintln!("notice: the console's browser test skipped (node, chromium or tests/browser/node_modules missing)");
    }
    ok
}

/// A client with its own cookie, logged in as `user`; the session's CSRF
/// token, read off a page as a browser would.
async fn logged_in(hq: &str, user: &str) -> (reqwest::Client, String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let res = client
        .post(format!("{hq}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "username={user}&password={}",
            PASSWORD.replace(' ', "+")
        ))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status().as_u16(), 303, "{user} logs in");
    let set = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set.split(';').next().unwrap_or("").to_string();
    let (_, page) = get_page(&client, &format!("{hq}/console/"), &cookie).await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF token on the page")
        .to_string();
    (client, cookie, csrf)
}

/// GET `url` with a session's cookie: the status and the page.
async fn get_page(client: &reqwest::Client, url: &str, cookie: &str) -> (u16, String) {
    let res = client
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET");
    let status = res.status().as_u16();
    (status, res.text().await.expect("page"))
}

async fn post_form(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    origin: Option<&str>,
    body: &str,
) -> u16 {
    let mut req = client
        .post(url)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.expect("POST").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_find_resolve_refund_and_reconcile_in_the_console() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let db = common::fresh_db(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = tillpay::sim::Simulator::start(Duration::from_millis(200))
        .await
        .expect("simulator");
    let cfg = common::hq_config_with_gateways(dir.path(), &db, 0, &sim, 0, "");
    let mut hq = HqProcess::start(&cfg);
    let url = hq.url();
    let token = common::add_till(&cfg, "S1", "T1");
    let till = TillProcess::start(&sim, "T1", &url, &token).await;
    let mut pos = till.pos().await;
    let mut codes = Vec::new();
    for (order, b, p, amount) in [
        ("N1", Behaviour::RevokeFails, Provider::Wechat, 880),
        ("P1", Behaviour::PaysAtOnce, Provider::Alipay, 1200),
        ("P2", Behaviour::PaysAtOnce, Provider::Wechat, 800),
    ] {
        let code = b.code(p, codes.len() as u64 + 1);
        let v = pos
            .call("charge", json!({"order_no": order, "amount": amount, "auth_code": code, "operator_id": "amy"}), |_| {})
            .await
            .expect("charge");
        let want = if order == "N1" {
            "needs_attention"
        } else {
            "paid"
        };
        assert_eq!(v["status"], want, "{v}");
        codes.push((
            order,
            code,
            v["out_trade_no"].as_str().unwrap_or("").to_string(),
        ));
    }
    // The cashier closes the shift: its Z-report goes to HQ with the sync.
    let closed = pos
        .call("shift.close", json!({}), |_| {})
        .await
        .expect("shift.close");
    assert_eq!(closed["shift_no"], 1, "{closed}");
    let end = Instant::now() + Duration::from_secs(30);
    while common::get(&url, "/v1/sales?till=T1")
        .await
        .as_array()
        .map_or(0, Vec::len)
        < 3
    {
        assert!(Instant::now() < end, "the till never synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (user, role) in [
        ("ada", "admin"),
        ("olga", "operator"),
        ("vic", "viewer"),
        ("mallory", "viewer"),
    ] {
        account(&cfg, user, role);
    }

    // Guessing a password: twelve wrong tries sent at once get five
    // answers at most; then even the right password waits, until an
    // admin sets the account again.
    let guesser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = |pw: String| {
        guesser
            .post(format!("{url}/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "username=mallory&password={}",
                pw.replace(' ', "+")
            ))
            .send()
    };
    let mut at_once = tokio::task::JoinSet::new();
    for i in 0..12 {
        at_once.spawn(login(format!("guess number {i}")));
    }
    let mut tries = Vec::new();
    while let Some(r) = at_once.join_next().await {
        tries.push(r.expect("join").expect("login").status().as_u16());
    }
    assert_eq!(tries.iter().filter(|s| **s == 401).count(), 5, "{tries:?}");
    assert_eq!(tries.iter().filter(|s| **s == 429).count(), 7, "{tries:?}");
    assert_eq!(
        login(PASSWORD.into())
            .await
            .expect("login")
            .status()
            .as_u16(),
        429,
        "locked out"
    );
    account(&cfg, "mallory", "viewer");
    assert_eq!(
        login(PASSWORD.into())
            .await
            .expect("login")
            .status()
            .as_u16(),
        303,
        "an admin lifts the lock"
    );
    // No session, no page; no session, no action.
    let anon = guesser
        .get(format!("{url}/console/sales"))
        .send()
        .await
        .expect("GET");
    assert_eq!(anon.status().as_u16(), 303);
    // The server refuses what the pages would never send: a POST from
    // another origin, one without the session's token, a viewer's refund.
    let (client, cookie, csrf) = logged_in(&url, "olga").await;
    let refund_p2 = format!("{url}/console/sales/T1/P2/refund");
    let body = format!("csrf={csrf}&amount=8.00&refund_no=X1");
    assert_eq!(
        post_form(
            &client,
            &refund_p2,
            &cookie,
            Some("http://evil.example"),
            &body
        )
        .await,
        403
    );
    assert_eq!(
        post_form(
            &client,
            &refund_p2,
            &cookie,
            Some(&url),
            "amount=8.00&refund_no=X2"
        )
        .await,
        403
    );
    // A whole code typed into the search is refused, not echoed.
    let whole = &codes[2].1;
    let (status, page) = get_page(
        &client,
        &format!("{url}/console/sales?code={whole}"),
        &cookie,
    )
    .await;
    assert_eq!(status, 400);
    assert!(!page.contains(whole.as_str()));
    let (vclient, vcookie, vcsrf) = logged_in(&url, "vic").await;
    let vbody = format!("csrf={vcsrf}&amount=8.00&refund_no=X3");
    assert_eq!(
        post_form(&vclient, &refund_p2, &vcookie, Some(&url), &vbody).await,
        403
    );
    let (status, _) = get_page(&vclient, &format!("{url}/console/audit"), &vcookie).await;
    assert_eq!(status, 403, "the audit log is for admins");
    drop((client, vclient));

    if browser_tools() {
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
        let _ = std::fs::remove_dir_all(&shots);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/browser/console.mjs");
        let p2_code = &codes[2].1;
        let masked = format!("{}****{}", &p2_code[..4], &p2_code[p2_code.len() - 4..]);
        let run = tokio::process::Command::new("node")
            .arg(script)
            // Chromium keeps a `Secure` cookie from plain http only for
            // localhost, as it would over https anywhere.
            .env("HQ_URL", url.replace("127.0.0.1", "localhost"))
            .env("PASSWORD", PASSWORD)
            .env("SHOTS", &shots)
            .env("P2_MASKED", &masked)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(240), run)
            .await
            .expect("the browser test ends in time")
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "console browser test failed:\n{stdout}\n{}\n--- HQ ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&hq.log).unwrap_or_default()
        );
        assert!(stdout.contains("console: all steps passed"), "{stdout}");
        for name in [
            "console-sale.png",
            "console-attention.png",
            "console-refunded.png",
            "console-reconcile.png",
            "console-viewer.png",
            "console-audit.png",
        ] {
            let png = std::fs::read(shots.join(name)).expect("a screenshot is kept");
            assert!(
                png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
                "{name}"
            );
        }
        // What the operator did reached the till: its journal has the
        // verdict and the refund, and the gateway refunded once.
        let n1 = pos
            .call("query", json!({"order_no": "N1"}), |_| {})
            .await
            .expect("N1");
        assert_ne!(n1["status"], "needs_attention", "{n1}");
        let p1 = pos
            .call("query", json!({"order_no": "P1"}), |_| {})
            .await
            .expect("P1");
        assert_eq!(p1["refunded_amount"], 100, "{p1}");
        assert_eq!(
            sim.ledger.order(&codes[1].2).map(|o| o.refunded().0),
            Some(100)
        );
    }
    // Nothing refused moved money: P2 was never refunded.
    assert_eq!(
        sim.ledger.order(&codes[2].2).map(|o| o.refunded().0),
        Some(0)
    );
    let p2 = pos
        .call("query", json!({"order_no": "P2"}), |_| {})
        .await
        .expect("P2");
    assert_eq!(p2["refunded_amount"], 0, "{p2}");
    // The admin's audit log has every refusal, and (with the browser) the actions.
    let (aclient, acookie, _) = logged_in(&url, "ada").await;
    let (_, audit) = get_page(&aclient, &format!("{url}/console/audit"), &acookie).await;
    for action in [
        "login_failed",
        "login_locked",
        "refused_cross_site",
        "refused_csrf",
        "refused_role",
    ] {
        assert!(
            audit.contains(action),
            "{action} missing from the audit log"
        );
    }
    // No full payment code on any page or in HQ's log.
    let log = std::fs::read_to_string(&hq.log).unwrap_or_default();
    for (_, code, _) in &codes {
        assert!(
            !audit.contains(code.as_str()) && !log.contains(code.as_str()),
            "a full code leaked"
        );
    }
    // With the console's origin configured, Host no longer decides: a
    // POST whose Origin matches Host but not the configured origin is
    // refused; one from the configured origin goes through.
    let port = hq.port();
    hq.kill9();
    let top = format!("console_origin = \"http://localhost:{port}\"\n");
    let cfg = common::hq_config_with_gateways(dir.path(), &db, port, &sim, 0, &top);
    let hq = HqProcess::start(&cfg);
    let (client, cookie, csrf) = logged_in(&hq.url(), "ada").await;
    let logout = format!("{}/console/logout", hq.url());
    let body = format!("csrf={csrf}");
    assert_eq!(
        post_form(&client, &logout, &cookie, Some(&hq.url()), &body).await,
        403
    );
    let own = format!("http://localhost:{port}");
    assert_eq!(
        post_form(&client, &logout, &cookie, Some(&own), &body).await,
        303
    );
}
