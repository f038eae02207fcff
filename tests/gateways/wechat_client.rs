//! Building the WeChat client: the client certificate for /secapi/ calls
//! loads from the PEM text the config read, and a bad one is named.

use crate::wechat_support;

use std::path::PathBuf;
use std::time::Duration;

use tillpay::domain::Provider;
use tillpay::gateway::wechat::WechatGateway;
use tillpay::gateway::wechat::{ClientIdentity, WechatSignType};
use tillpay::gateway::Gateway;
use wechat_support::*;

const CERT: &str = include_str!("wechat_support/test_only_apiclient_cert.pem");
const KEY: &str = include_str!("wechat_support/test_only_apiclient_key.pem");

fn identity(cert: &str, key: &str) -> ClientIdentity {
    ClientIdentity {
        cert_pem: cert.to_string(),
        key_pem: key.to_string(),
        cert_file: PathBuf::from("/etc/tillpay/apiclient_cert.pem"),
    }
}

#[test]
fn a_pem_certificate_and_key_load() {
    let mut cfg = config("https://api.mch.weixin.qq.com", WechatSignType::HmacSha256);
    cfg.client_identity = Some(identity(CERT, KEY));
    cfg.min_reverse_delay = Duration::from_secs(15);
    let gw = WechatGateway::new(&cfg, TILL, Duration::from_secs(10)).expect("identity loads");
    assert_eq!(
        (gw.channel(), gw.carries()),
        ("wechat", &[Provider::Wechat][..])
    );
    assert_eq!(gw.min_revoke_delay(), Duration::from_secs(15));
}

#[test]
fn a_certificate_that_does_not_load_is_named() {
    for (cert, key) in [
        (
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            KEY,
        ),
        (CERT, ""),
        ("", KEY),
    ] {
        let mut cfg = config("https://api.mch.weixin.qq.com", WechatSignType::Md5);
        cfg.client_identity = Some(identity(cert, key));
        let err = WechatGateway::new(&cfg, TILL, Duration::from_secs(10))
            .expect_err("a broken identity is refused");
        assert_eq!(err.key, "wechat.cert_file", "{err}");
        assert!(
            err.message.contains("/etc/tillpay/apiclient_cert.pem"),
            "{err}"
        );
        assert!(
            !err.to_string().contains("PRIVATE KEY"),
            "key material in the error: {err}"
        );
    }
}

#[test]
fn an_unusable_base_url_is_named() {
    for url in ["ftp://api.mch.weixin.qq.com", "not a url", "http://"] {
        let err = WechatGateway::new(
            &config(url, WechatSignType::Md5),
            TILL,
            Duration::from_secs(1),
        )
        .expect_err("refused");
        assert_eq!(err.key, "wechat.base_url", "{url}: {err}");
    }
}
