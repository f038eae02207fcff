//! The `[wechat]` table with `api = "v3"`: what loads, and that every
//! mistake names its key.

use std::os::unix::fs::PermissionsExt;

use crate::gateway::channel::Channel;
use crate::gateway::wechat::CHANNEL;
use crate::sim::wechat::v3::keys;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        let d = Dir(tempfile::tempdir().expect("tempdir"));
        d.write("key.pem", keys::MERCHANT_PRIVATE_KEY_PEM, 0o600);
        d.write("cert.pem", keys::MERCHANT_CERT_PEM, 0o644);
        d.write("pub.pem", keys::WECHATPAY_PUBLIC_KEY_PEM, 0o644);
        d.write("platform.pem", keys::PLATFORM_CERT_PEM, 0o644);
        d
    }

    fn write(&self, name: &str, text: &str, mode: u32) {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn check(&self, table: &str) -> Result<super::WechatV3Config, String> {
        let value: toml::Value = toml::from_str(table).expect("toml");
        super::check(value, self.0.path()).map_err(|e| e.to_string())
    }
}

const GOOD: &str = r#"
api = "v3"
appid = "wx8888888888888888"
mch_id = "1900000001"
cert_key_file = "key.pem"
cert_file = "cert.pem"
wechatpay_public_key_id = "PUB_KEY_ID_0119000000012026120100000000000001"
wechatpay_public_key_file = "pub.pem"
"#;

#[test]
fn a_good_table_loads_with_the_serial_read_from_the_certificate_and_the_backup_on() {
    let cfg = Dir::new().check(GOOD).expect("loads");
    assert_eq!(cfg.cert_serial_no, keys::MERCHANT_SERIAL);
    assert_eq!(cfg.signing_mchid(), "1900000001");
    assert_eq!(cfg.answer_keys.len(), 1);
    assert_eq!(cfg.base_url, "https://api.mch.weixin.qq.com");
    assert_eq!(cfg.backup_url.as_deref(), Some("https://api2.mch.weixin.qq.com"));
    let off = Dir::new()
        .check(&format!("{GOOD}backup_base_url = \"\"\n"))
        .expect("loads");
    assert_eq!(off.backup_url, None);
    assert!(!format!("{cfg:?}").contains("PRIVATE KEY"), "the key never in a log");
}

#[test]
fn platform_certificates_alone_or_beside_the_public_key() {
    let d = Dir::new();
    let both = d
        .check(&format!("{GOOD}platform_cert_files = [\"platform.pem\"]\n"))
        .expect("loads");
    let ids: Vec<&str> = both.answer_keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, [keys::PUBLIC_KEY_ID, keys::PLATFORM_SERIAL]);
    let only = GOOD
        .lines()
        .filter(|l| !l.starts_with("wechatpay_public_key"))
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = d
        .check(&format!("{only}\nplatform_cert_files = [\"platform.pem\"]\n"))
        .expect("loads");
    assert_eq!(cfg.answer_keys[0].id, keys::PLATFORM_SERIAL);
}

#[test]
fn each_mistake_names_its_key() {
    let d = Dir::new();
    let without = |key: &str| {
        GOOD.lines()
            .filter(|l| !l.starts_with(key))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let cases = [
        (without("cert_key_file"), "wechat.cert_key_file"),
        (without("cert_file"), "wechat.cert_serial_no"),
        (without("wechatpay_public_key_file"), "wechat.wechatpay_public_key_file"),
        (without("wechatpay_public_key"), "wechat.wechatpay_public_key_id"),
        (
            GOOD.replace("PUB_KEY_ID_0119", "KEY_0119"),
            "wechat.wechatpay_public_key_id",
        ),
        (format!("{GOOD}cert_serial_no = \"not hex\"\n"), "wechat.cert_serial_no"),
        (format!("{GOOD}min_reverse_delay_ms = 10\n"), "wechat.min_reverse_delay_ms"),
        (format!("{GOOD}api_key_file = \"k\"\n"), "wechat.api_key_file"),
        (format!("{GOOD}private_key_file = \"key.pem\"\n"), "wechat.private_key_file"),
        (format!("{GOOD}sign_type = \"MD5\"\n"), "wechat"),
        (GOOD.replace("pub.pem", "key.pem"), "wechat.wechatpay_public_key_file"),
    ];
    for (table, key) in cases {
        let err = d.check(&table).expect_err(key);
        assert!(err.starts_with(&format!("{key}:")), "{key}: {err}");
    }
    // The older name of the signing key still works on its own.
    d.check(&GOOD.replace("cert_key_file =", "private_key_file ="))
        .expect("private_key_file");
    d.write("key.pem", keys::MERCHANT_PRIVATE_KEY_PEM, 0o644);
    let err = d.check(GOOD).expect_err("a readable key");
    assert!(err.starts_with("wechat.cert_key_file:") && err.contains("chmod 600"), "{err}");
}

#[test]
fn the_channel_picks_the_protocol_by_api() {
    let d = Dir::new();
    let v3 = CHANNEL
        .check_config(toml::from_str(GOOD).expect("toml"), d.0.path())
        .expect("v3 loads");
    assert!(v3.as_any().downcast_ref::<super::WechatV3Config>().is_some());
    let err = CHANNEL
        .check_config(
            toml::from_str(&GOOD.replace("\"v3\"", "\"v4\"")).expect("toml"),
            d.0.path(),
        )
        .expect_err("v4");
    assert_eq!(err.key, "wechat.api");
}
