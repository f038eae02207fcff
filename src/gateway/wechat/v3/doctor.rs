//! `tillpay doctor` for a v3 merchant: the merchant certificate against
//! the configured serial and private key, and the keys answers are
//! verified with. The clock check every channel gets matters more here:
//! WeChat refuses a v3 request whose timestamp is off, and tillpay refuses
//! an answer more than five minutes from its clock.

use chrono::{DateTime, Utc};

use super::config::WechatV3Config;
use crate::gateway::channel::{Finding, Health};
use crate::gateway::rsa;
use crate::gateway::wechat::cert;
use crate::gateway::wechat::channel::expiry_finding;

pub fn findings(cfg: &WechatV3Config, now: DateTime<Utc>) -> Vec<Finding> {
    let mut out = vec![Finding::new(
        Health::Ok,
        "wechat api",
        format!(
            "API v3 for merchant {}, requests signed with the API certificate serial {}",
            cfg.signing_mchid(),
            cfg.cert_serial_no
        ),
    )];
    if let Some((file, pem)) = &cfg.merchant_cert {
        out.push(merchant_cert(cfg, file, pem));
        out.push(expiry_finding("wechat certificate", file, pem, now));
    }
    for key in &cfg.answer_keys {
        match &key.cert_pem {
            None => out.push(Finding::new(
                Health::Ok,
                "wechat answer key",
                format!(
                    "answers signed {} are verified with the WeChat Pay public key {}",
                    key.id,
                    key.file.display()
                ),
            )),
            Some(pem) => {
                let what = format!("wechat platform certificate {}", key.id);
                let mut f = expiry_finding(&what, &key.file, pem, now);
                if f.health != Health::Ok {
                    f.detail.push_str(
                        "; WeChat now issues a WeChat Pay public key instead (wechat.wechatpay_public_key_id)",
                    );
                }
                out.push(f);
            }
        }
    }
    out
}

/// The certificate must be the one whose serial requests name, for the
/// key that signs them: otherwise WeChat refuses every request (401).
fn merchant_cert(cfg: &WechatV3Config, file: &std::path::Path, pem: &str) -> Finding {
    let what = "wechat certificate serial";
    let shown = file.display();
    let serial = match cert::serial_hex(pem) {
        Ok(s) => s,
        Err(e) => return Finding::new(Health::Fail, what, format!("{shown}: {e}")),
    };
    if !serial.eq_ignore_ascii_case(&cfg.cert_serial_no) {
        return Finding::new(
            Health::Fail,
            what,
            format!(
                "wechat.cert_serial_no is {} but {shown} has serial {serial}: WeChat will refuse every request",
                cfg.cert_serial_no
            ),
        );
    }
    let pair = rsa::parse_private_key(&cfg.private_key_pem).map(|k| rsa::public_key_of(&k));
    match (pair, cert::public_key(pem)) {
        (Ok(a), Ok(b)) if a == b => Finding::new(
            Health::Ok,
            what,
            format!("{shown} has serial {serial} and matches wechat.cert_key_file"),
        ),
        (Ok(_), Ok(_)) => Finding::new(
            Health::Fail,
            what,
            format!("{shown} is not the certificate of wechat.cert_key_file: WeChat will refuse every request"),
        ),
        (Err(e), _) | (_, Err(e)) => Finding::new(Health::Fail, what, format!("{shown}: {e}")),
    }
}
