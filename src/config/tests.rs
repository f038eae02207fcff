use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::gateway::alipay::AlipayConfig;
use crate::gateway::wechat::{WechatConfig, WechatSignType};

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        let d = Dir(tempfile::tempdir().expect("tempdir"));
        d.write("wechat-key", "192006250b4c09247ec02edce69f6a2d\n", 0o600);
        d.write("ap-priv.pem", "PRIVATE", 0o600);
        d.write("ap-pub.pem", "PUBLIC", 0o644);
        d
    }
    fn write(&self, name: &str, text: &str, mode: u32) {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    fn parse(&self, toml: &str) -> Result<Config, ConfigError> {
        Config::parse(toml, &self.0.path().join("tillpay.toml"))
    }
}

const GOOD: &str = r#"
[till]
id = "S001-T03"
state_dir = "/tmp/x"
[wechat]
base_url = "http://127.0.0.1:1"
appid = "wx2421b1c4370ec43b"
mch_id = "10000100"
api_key_file = "wechat-key"
[alipay]
gateway_url = "http://127.0.0.1:1/gateway.do"
app_id = "2021000000000000"
app_private_key_file = "ap-priv.pem"
alipay_public_key_file = "ap-pub.pem"
"#;

fn err(r: Result<Config, ConfigError>) -> String {
    match r {
        Ok(_) => panic!("config accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_good_config_gets_the_contract_defaults() {
    let d = Dir::new();
    let c = d.parse(GOOD).expect("good config");
    assert_eq!(c.till.id, "S001-T03");
    assert_eq!(c.payment, PaymentConfig::default());
    assert_eq!(c.payment.pay_timeout, Duration::from_millis(30_000));
    assert_eq!(c.pos.socket_mode, 0o660);
    assert_eq!(c.pos.socket, PathBuf::from("/run/tillpay/pos.sock"));
    assert!(c.scanner.is_none());
    let w = c.channel_as::<WechatConfig>().expect("wechat");
    assert_eq!(w.api_key, "192006250b4c09247ec02edce69f6a2d");
    assert_eq!(w.sign_type, WechatSignType::HmacSha256);
    assert_eq!(w.min_reverse_delay, Duration::from_secs(15));
    assert_eq!(
        c.channel_as::<AlipayConfig>()
            .expect("alipay")
            .app_private_key,
        "PRIVATE"
    );
}

#[test]
fn an_unknown_key_is_an_error_that_names_it() {
    let d = Dir::new();
    let e = err(d.parse(&GOOD.replace("[alipay]", "[alipay]\napp_idd = \"x\"")));
    assert!(e.contains("app_idd"), "{e}");
    let e = err(d.parse(&format!("{GOOD}\n[payment]\npoll_intervall_ms = 5\n")));
    assert!(e.contains("poll_intervall_ms"), "{e}");
    let e = err(d.parse(&format!("{GOOD}\n[wechatpay]\nappid = \"x\"\n")));
    assert!(e.starts_with("wechatpay"), "{e}");
    assert!(e.contains("wechat, alipay"), "{e}");
}

#[test]
fn bad_values_name_their_key() {
    let d = Dir::new();
    let cases = [
        (GOOD.replace("S001-T03", "till 3"), "till.id"),
        (
            format!("{GOOD}\n[payment]\npoll_interval_ms = 0\n"),
            "payment.poll_interval_ms",
        ),
        (
            format!("{GOOD}\n[payment]\nrevoke_max_attempts = 0\n"),
            "payment.revoke_max_attempts",
        ),
        (
            format!("{GOOD}\n[payment]\nmax_amount = 0\n"),
            "payment.max_amount",
        ),
        (
            format!("{GOOD}\n[pos]\nsocket_mode = \"rw\"\n"),
            "pos.socket_mode",
        ),
        (
            format!("{GOOD}\n[scanner]\ndevice = \"/dev/x\"\nbaud = 1234\n"),
            "scanner.baud",
        ),
        (
            format!("{GOOD}\n[scanner]\nbaud = 9600\n"),
            "scanner.device",
        ),
        (
            GOOD.replace("HMAC", "x")
                .replace("mch_id = \"10000100\"\n", ""),
            "wechat.mch_id",
        ),
        (
            GOOD.replace("http://127.0.0.1:1\"", "ftp://x\""),
            "wechat.base_url",
        ),
        (
            GOOD.replace("http://127.0.0.1:1\"", "https://api.mch.weixin.qq.com\""),
            "wechat.cert_file",
        ),
        (
            GOOD.replace(
                "api_key_file = \"wechat-key\"",
                "api_key_file = \"wechat-key\"\nca_file = \"no-such-ca.pem\"",
            ),
            "wechat.ca_file",
        ),
        (
            format!("{GOOD}ca_file = \"no-such-ca.pem\"\n"),
            "alipay.ca_file",
        ),
    ];
    for (text, key) in cases {
        let e = err(d.parse(&text));
        assert!(e.starts_with(key), "expected {key}: {e}");
    }
    let no_provider = "[till]\nid = \"T1\"\n";
    assert!(err(d.parse(no_provider)).contains("no payment provider"));
    let e = err(d.parse("[till]\nid = 5\n"));
    assert!(e.contains("tillpay.toml"), "{e}");
}

#[test]
fn a_secret_readable_by_others_is_refused_with_the_fix() {
    let d = Dir::new();
    d.write("wechat-key", "192006250b4c09247ec02edce69f6a2d", 0o644);
    let e = err(d.parse(GOOD));
    assert!(e.starts_with("wechat.api_key_file"), "{e}");
    assert!(e.contains("chmod 600"), "{e}");
    d.write("wechat-key", "192006250b4c09247ec02edce69f6a2d", 0o600);
    d.write("ap-priv.pem", "PRIVATE", 0o640);
    let e = err(d.parse(GOOD));
    assert!(e.starts_with("alipay.app_private_key_file"), "{e}");
}

#[test]
fn a_wrong_length_api_key_is_refused() {
    let d = Dir::new();
    d.write("wechat-key", "short", 0o600);
    assert!(err(d.parse(GOOD)).contains("32-character"));
}

#[test]
fn a_short_reverse_delay_only_for_simulators() {
    let d = Dir::new();
    let c = d
        .parse(&GOOD.replace("api_key_file", "min_reverse_delay_ms = 300\napi_key_file"))
        .expect("simulator may shorten");
    assert_eq!(
        c.channel_as::<WechatConfig>()
            .expect("wechat")
            .min_reverse_delay,
        Duration::from_millis(300)
    );
}

#[test]
fn each_provider_goes_by_its_own_channel_unless_routes_say_otherwise() {
    let d = Dir::new();
    let c = d.parse(GOOD).expect("good config");
    assert_eq!(
        c.routing(),
        [
            (Provider::Wechat, "wechat".to_string()),
            (Provider::Alipay, "alipay".to_string())
        ],
        "no channel carries UnionPay codes here"
    );
    let routed = d
        .parse(&format!("{GOOD}[routes]\nwechat = \"wechat\"\n"))
        .expect("a route to a configured channel");
    assert_eq!(routed.route(Provider::Wechat), Some("wechat"));
    for (routes, key, says) in [
        (
            "wechat = \"alipay\"",
            "routes.wechat",
            "does not carry wechat",
        ),
        (
            "unionpay = \"wechat\"",
            "routes.unionpay",
            "does not carry unionpay",
        ),
        ("paypal = \"wechat\"", "routes.paypal", "no such provider"),
        ("wechat = \"bank\"", "routes.wechat", "is not a channel"),
        ("wechat = 1", "routes.wechat", "channel's name"),
    ] {
        let e = err(d.parse(&format!("{GOOD}[routes]\n{routes}\n")));
        assert!(e.contains(key) && e.contains(says), "{routes}: {e}");
    }
    let only_wechat: String = GOOD
        .split("[alipay]")
        .next()
        .unwrap_or_default()
        .to_string();
    let e = err(d.parse(&format!("{only_wechat}[routes]\nalipay = \"alipay\"\n")));
    assert!(
        e.contains("routes.alipay") && e.contains("not configured"),
        "{e}"
    );
}

#[test]
fn the_web_interface_is_off_by_default_loopback_and_every_mistake_names_its_key() {
    let d = Dir::new();
    assert!(d.parse(GOOD).expect("good").web.is_none(), "off by default");
    d.write("web-token", "tok-0123456789abcdefghijklmn\n", 0o600);
    let with = |table: &str| format!("{GOOD}[web]\ntoken_file = \"web-token\"\n{table}");
    let w = d
        .parse(&with("allowed_origins = [\"http://localhost:3000/\"]\n"))
        .expect("web")
        .web
        .expect("configured");
    assert_eq!(w.listen.to_string(), "127.0.0.1:8765");
    assert_eq!(w.token, "tok-0123456789abcdefghijklmn");
    assert_eq!(w.allowed_origins, ["http://localhost:3000"]);
    assert!(
        !format!("{w:?}").contains("tok-"),
        "the token stays out of Debug"
    );
    let exposed = d
        .parse(&with("listen = \"0.0.0.0:8765\"\nexpose = true\n"))
        .expect("exposed on purpose");
    assert!(exposed.web.is_some());
    for (table, key) in [
        ("listen = \"0.0.0.0:8765\"\n", "web.listen"),
        ("listen = \"localhost\"\n", "web.listen"),
        (
            "allowed_origins = [\"localhost:3000\"]\n",
            "web.allowed_origins",
        ),
        (
            "allowed_origins = [\"http://x/pos\"]\n",
            "web.allowed_origins",
        ),
    ] {
        let e = err(d.parse(&with(table)));
        assert!(e.starts_with(key), "{table}: {e}");
    }
    let e = err(d.parse(&with("port = 1\n")));
    assert!(
        e.contains("unknown field `port`") && e.contains("web"),
        "{e}"
    );
    let e = err(d.parse(&format!("{GOOD}[web]\n")));
    assert!(e.starts_with("web.token_file"), "{e}");
    d.write("web-token", "short\n", 0o600);
    let e = err(d.parse(&with("")));
    assert!(
        e.starts_with("web.token_file") && e.contains("24-256"),
        "{e}"
    );
    d.write("web-token", "tok-0123456789abcdefghijklmn\n", 0o644);
    let e = err(d.parse(&with("")));
    assert!(
        e.starts_with("web.token_file") && e.contains("chmod 600"),
        "{e}"
    );
}

#[test]
fn hq_sync_is_off_by_default_wants_https_off_loopback_and_names_each_key() {
    let d = Dir::new();
    assert!(d.parse(GOOD).expect("good").hq.is_none(), "off by default");
    d.write("hq-token", "hq-token-0123456789abcdefghij\n", 0o600);
    let with = |table: &str| format!("{GOOD}[hq]\ntoken_file = \"hq-token\"\n{table}");
    let h = d
        .parse(&with("url = \"https://hq.example.com/\"\n"))
        .expect("hq")
        .hq
        .expect("configured");
    assert_eq!(h.url, "https://hq.example.com");
    assert_eq!(h.sync_interval_ms, 2000);
    assert!(
        !format!("{h:?}").contains("hq-token-"),
        "the token stays out of Debug"
    );
    for ok in [
        "http://127.0.0.1:8740",
        "http://localhost:8740",
        "http://[::1]:8740",
    ] {
        assert!(d.parse(&with(&format!("url = \"{ok}\"\n"))).is_ok(), "{ok}");
    }
    for (table, key, says) in [
        ("url = \"http://hq.example.com\"\n", "hq.url", "https"),
        ("url = \"http://10.0.0.5:8740\"\n", "hq.url", "https"),
        ("url = \"hq.example.com\"\n", "hq.url", "not a URL"),
        ("url = \"https://\"\n", "hq.url", "not a URL"),
        ("", "hq.url", "required"),
        (
            "url = \"https://hq.example.com\"\nsync_interval_ms = 5\n",
            "hq.sync_interval_ms",
            "outside",
        ),
    ] {
        let e = err(d.parse(&with(table)));
        assert!(e.starts_with(key) && e.contains(says), "{table}: {e}");
    }
    let e = err(d.parse(&format!("{GOOD}[hq]\nurl = \"https://hq.example.com\"\n")));
    assert!(e.starts_with("hq.token_file"), "{e}");
    d.write("hq-token", "short\n", 0o600);
    let e = err(d.parse(&with("url = \"https://hq.example.com\"\n")));
    assert!(
        e.starts_with("hq.token_file") && e.contains("till add"),
        "{e}"
    );
}

#[test]
fn relay_mode_is_the_hq_channel_carrying_every_code_and_needs_no_gateway_key() {
    let d = Dir::new();
    d.write("hq-token", "hq-token-0123456789abcdefghij\n", 0o600);
    let till = "[till]\nid = \"S001-T03\"\nstate_dir = \"/tmp/x\"\n";
    let hq = "[hq]\nurl = \"https://hq.example.com\"\ntoken_file = \"hq-token\"\n";
    // Sync alone is not a channel: the till still needs one.
    let e = err(d.parse(&format!("{till}{hq}")));
    assert!(e.contains("no payment provider"), "{e}");
    let c = d
        .parse(&format!("{till}{hq}relay = true\n"))
        .expect("relay only");
    assert!(c.hq.is_some(), "relay mode syncs too");
    for p in [Provider::Wechat, Provider::Alipay, Provider::Unionpay] {
        assert_eq!(c.route(p), Some("hq"), "{p}");
    }
    let relay = c
        .channel_as::<crate::gateway::hq::RelayConfig>()
        .expect("relay config");
    assert_eq!(relay.url, "https://hq.example.com");
    assert_eq!(relay.min_revoke_delay, Duration::from_millis(15_000));
    assert!(!format!("{relay:?}").contains("hq-token-"));
    // With a till's own keys as well, its own channels go first unless
    // routed through HQ.
    let both = d.parse(&format!("{GOOD}{hq}relay = true\n")).expect("both");
    assert_eq!(both.route(Provider::Wechat), Some("wechat"));
    let routed = d
        .parse(&format!(
            "{GOOD}{hq}relay = true\n[routes]\nwechat = \"hq\"\n"
        ))
        .expect("routed");
    assert_eq!(routed.route(Provider::Wechat), Some("hq"));
    for (extra, key) in [
        (
            "relay = true\nmin_revoke_delay_ms = -1\n",
            "hq.min_revoke_delay_ms",
        ),
        (
            "relay = true\nmin_revoke_delay_ms = 999999\n",
            "hq.min_revoke_delay_ms",
        ),
        ("relay = true\nrelays = true\n", "hq"),
        (
            "relay = true\nmin_revoke_delay_ms = 1000\n",
            "hq.min_revoke_delay_ms",
        ),
    ] {
        let e = err(d.parse(&format!("{till}{hq}{extra}")));
        assert!(e.contains(key), "{extra}: {e}");
    }
}
