//! `tillpay doctor`: a good config passes; each kind of fault gives its
//! FAIL line, and only then a non-zero exit.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tillpay::sim::pty::Pty;
use tillpay::sim::{Simulator, WechatApi};

struct Setup {
    dir: tempfile::TempDir,
    sim: Simulator,
    _pty: Pty,
    tables: String,
    scanner: String,
}

async fn setup() -> Setup {
    let sim = Simulator::start(Duration::from_millis(100))
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = sim
        .write_config_tables(dir.path(), 15000, WechatApi::V2)
        .expect("tables");
    let pty = Pty::open().expect("pty");
    let scanner = pty.path.display().to_string();
    Setup {
        dir,
        sim,
        _pty: pty,
        tables,
        scanner,
    }
}

impl Setup {
    /// A file of tests/fixtures/tls copied into the test dir, mode 0600.
    fn tls_fixture(&self, f: &str) -> String {
        let from = format!("{}/tests/fixtures/tls/{f}", env!("CARGO_MANIFEST_DIR"));
        let to = self.dir.path().join(f);
        std::fs::copy(&from, &to).expect("copy");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        to.display().to_string()
    }

    /// The simulator's tables with a client certificate in `[wechat]`.
    fn with_cert(&self, cert: &str, key: &str) -> String {
        self.tables.replacen(
            "[wechat]\n",
            &format!(
                "[wechat]\ncert_file = {:?}\ncert_key_file = {:?}\n",
                self.tls_fixture(cert),
                self.tls_fixture(key)
            ),
            1,
        )
    }

    fn config(&self, tables: &str, device: &str) -> std::path::PathBuf {
        let text = format!(
            "[till]\nid = \"T1\"\nstate_dir = {:?}\n[pos]\nsocket = {:?}\n[scanner]\ndevice = {device:?}\n{tables}",
            self.dir.path().join("state").display().to_string(),
            self.dir.path().join("pos.sock").display().to_string(),
        );
        let p = self.dir.path().join("tillpay.toml");
        std::fs::write(&p, text).expect("write");
        p
    }
}

async fn doctor(config: &std::path::Path) -> (Option<i32>, String) {
    let config = config.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tillpay"))
            .arg("doctor")
            .arg("--config")
            .arg(config)
            .output()
            .expect("runs")
    })
    .await
    .expect("join");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn fail_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("FAIL")).collect()
}

#[tokio::test]
async fn a_good_config_passes() {
    let s = setup().await;
    let tables = s.with_cert("apiclient_cert.pem", "apiclient_key.pem");
    let (code, out) = doctor(&s.config(&tables, &s.scanner)).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(fail_lines(&out).is_empty(), "{out}");
    for what in [
        "OK   config",
        "OK   keys",
        "OK   scanner",
        "OK   wechat gateway",
        "OK   alipay gateway",
        "OK   routing",
        "wechat by wechat, alipay by alipay; unionpay codes are refused",
        "OK   clock",
        "journal",
        "wechat certificate",
        "2125-01-01",
    ] {
        assert!(out.contains(what), "no {what:?} in:\n{out}");
    }
    let _ = &s.sim;
}

// One fault after another on one set-up, each undone before the next.
#[tokio::test]
async fn each_fault_gives_its_fail_line() {
    let s = setup().await;
    // An unknown key.
    let (code, out) = doctor(&s.config(&format!("{}\nbogus = 1\n", s.tables), &s.scanner)).await;
    assert_eq!(code, Some(1));
    assert!(
        fail_lines(&out)
            .iter()
            .any(|l| l.contains("config") && l.contains("bogus")),
        "{out}"
    );
    // A secret readable by others.
    let key = s.dir.path().join("wechat-api-key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, out) = doctor(&s.config(&s.tables, &s.scanner)).await;
    assert_eq!(code, Some(1));
    assert!(
        fail_lines(&out).iter().any(|l| l.contains("chmod 600")),
        "{out}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // A key that does not parse.
    let ap = s.dir.path().join("alipay-app-private-key.pem");
    std::fs::write(
        &ap,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let (code, out) = doctor(&s.config(&s.tables, &s.scanner)).await;
    assert_eq!(code, Some(1));
    assert!(
        fail_lines(&out)
            .iter()
            .any(|l| l.contains("keys") && l.contains("alipay-app-private-key.pem")),
        "{out}"
    );
    std::fs::write(&ap, tillpay::sim::alipay::keys::DEMO_APP_PRIVATE_KEY_PEM).expect("write");
    // No scanner.
    let (code, out) = doctor(&s.config(&s.tables, "/dev/tillpay-no-such-scanner")).await;
    assert_eq!(code, Some(1));
    assert!(
        fail_lines(&out)
            .iter()
            .any(|l| l.contains("scanner") && l.contains("not present")),
        "{out}"
    );
    // A gateway nobody answers at.
    let unreachable = s
        .tables
        .replace(&s.sim.wechat_base_url(), "http://127.0.0.1:9");
    let (code, out) = doctor(&s.config(&unreachable, &s.scanner)).await;
    assert_eq!(code, Some(1));
    assert!(
        fail_lines(&out)
            .iter()
            .any(|l| l.contains("wechat gateway") && l.contains("not reachable")),
        "{out}"
    );
    // An expired client certificate: reverse and refund would fail.
    let with_cert = s.with_cert("expired_cert.pem", "expired_key.pem");
    let (code, out) = doctor(&s.config(&with_cert, &s.scanner)).await;
    assert_eq!(code, Some(1));
    assert!(
        fail_lines(&out)
            .iter()
            .any(|l| l.contains("wechat certificate") && l.contains("expired")),
        "{out}"
    );
    // A damaged journal.
    std::fs::create_dir_all(s.dir.path().join("state")).expect("mkdir");
    std::fs::write(
        s.dir.path().join("state/journal.sqlite"),
        vec![0x42u8; 8192],
    )
    .expect("write");
    let (code, out) = doctor(&s.config(&s.tables, &s.scanner)).await;
    assert_eq!(code, Some(1));
    assert!(
        fail_lines(&out).iter().any(|l| l.contains("journal")),
        "{out}"
    );
}

#[tokio::test]
async fn a_v3_merchant_gets_its_key_and_serial_checked() {
    let s = setup().await;
    let tables = s
        .sim
        .write_config_tables(s.dir.path(), 15000, WechatApi::V3)
        .expect("tables");
    let (code, out) = doctor(&s.config(&tables, &s.scanner)).await;
    assert_eq!(code, Some(0), "{out}");
    for what in [
        "OK   wechat api",
        "API v3 for merchant 1900000001",
        "OK   wechat certificate serial",
        "matches wechat.cert_key_file",
        "OK   wechat answer key",
        "PUB_KEY_ID_",
        "OK   wechat certificate",
        "OK   clock",
    ] {
        assert!(out.contains(what), "no {what:?} in:\n{out}");
    }
    // A serial that is not the certificate's: every request would be refused.
    let wrong = tables.replacen("[wechat]\n", "[wechat]\ncert_serial_no = \"0A1B2C\"\n", 1);
    let (code, out) = doctor(&s.config(&wrong, &s.scanner)).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        fail_lines(&out)
            .iter()
            .any(|l| l.contains("wechat certificate serial") && l.contains("0A1B2C")),
        "{out}"
    );
}

#[tokio::test]
async fn an_acquirer_only_till_routes_every_wallet_through_it() {
    let s = setup().await;
    let table = s
        .sim
        .write_acquirer_table(s.dir.path(), 15000)
        .expect("table");
    let (code, out) = doctor(&s.config(&table, &s.scanner)).await;
    assert_eq!(code, Some(0), "{out}");
    for what in [
        "OK   acquirer gateway",
        "wechat by acquirer, alipay by acquirer, unionpay by acquirer",
    ] {
        assert!(out.contains(what), "no {what:?} in:\n{out}");
    }
}

#[tokio::test]
async fn a_keyboard_mode_scanner_that_is_not_an_input_device_is_named() {
    let s = setup().await;
    let text = s.config(&s.tables, &s.scanner);
    let config = std::fs::read_to_string(&text).expect("config");
    let config = config.replacen("[scanner]\n", "[scanner]\nkind = \"hid\"\n", 1);
    std::fs::write(&text, config).expect("write");
    let (code, out) = doctor(&text).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        fail_lines(&out)
            .iter()
            .any(|l| l.contains("scanner") && l.contains("not an input device")),
        "{out}"
    );
}

#[tokio::test]
async fn the_web_interface_is_checked_free_or_taken() {
    let s = setup().await;
    let token = s.dir.path().join("web-token");
    std::fs::write(&token, "tok-0123456789abcdefghijklmn\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let web = |port: u16| {
        format!(
            "[web]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = {:?}\n{}",
            token.display().to_string(),
            s.tables
        )
    };
    // Something else holds the port and does not speak for this till.
    let (code, out) = doctor(&s.config(&web(port), &s.scanner)).await;
    assert_ne!(code, Some(0), "{out}");
    assert!(
        fail_lines(&out)
            .iter()
            .any(|l| l.contains("web") && l.contains(&port.to_string())),
        "{out}"
    );
    drop(taken);
    let (_, out) = doctor(&s.config(&web(port), &s.scanner)).await;
    assert!(out.contains("OK   web") && out.contains("is free"), "{out}");
    assert!(out.contains("no browser page may connect"), "{out}");
}
