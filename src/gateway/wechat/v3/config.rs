//! The `[wechat]` table with `api = "v3"`: the merchant's API key and
//! certificate serial, the keys answers are verified with (the WeChat Pay
//! public key, platform certificates, or both while a merchant migrates),
//! and the settings shared with v2.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::request::Account;
use crate::gateway::setup::{
    check_url, invalid, nonempty, read_public, read_secret, resolve, SetupError,
};
use crate::gateway::wechat::cert;

/// A key answers may be signed with, by the id `Wechatpay-Serial` gives.
#[derive(Clone)]
pub struct AnswerKey {
    /// `PUB_KEY_ID_…`, or a platform certificate's serial.
    pub id: String,
    /// PKCS#1 DER.
    pub public_key: Vec<u8>,
    /// Where it came from, for doctor and errors.
    pub file: PathBuf,
    /// The PEM text of a platform certificate (its expiry, for doctor).
    pub cert_pem: Option<String>,
}

#[derive(Clone)]
pub struct WechatV3Config {
    pub base_url: String,
    pub backup_url: Option<String>,
    pub account: Account,
    /// The merchant's API private key (`apiclient_key.pem`), PEM text.
    pub private_key_pem: String,
    /// The serial of the merchant's API certificate, upper-case hex.
    pub cert_serial_no: String,
    /// The merchant's API certificate, when given: doctor checks that its
    /// serial is `cert_serial_no` and that it has not expired.
    pub merchant_cert: Option<(PathBuf, String)>,
    pub answer_keys: Vec<AnswerKey>,
    /// `scene_info.store_info.out_id`: the shop, as the merchant numbers it.
    pub store_id: Option<String>,
    pub ca_pem: Option<String>,
    pub min_reverse_delay: Duration,
}

impl std::fmt::Debug for WechatV3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatV3Config")
            .field("base_url", &self.base_url)
            .field("backup_url", &self.backup_url)
            .field("account", &self.account)
            .field("cert_serial_no", &self.cert_serial_no)
            .field("private_key", &"<secret>")
            .finish_non_exhaustive()
    }
}

impl WechatV3Config {
    /// The merchant number requests are signed for (the service
    /// provider's in partner mode).
    pub fn signing_mchid(&self) -> &str {
        match &self.account {
            Account::Direct { mchid, .. } => mchid,
            Account::Partner { sp_mchid, .. } => sp_mchid,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawV3 {
    #[allow(dead_code)] // checked by the caller: it chose this table's kind
    api: String,
    base_url: Option<String>,
    backup_base_url: Option<String>,
    appid: Option<String>,
    mch_id: Option<String>,
    sub_mch_id: Option<String>,
    sub_appid: Option<String>,
    /// The key that signs requests. `cert_key_file` is the name the POS
    /// contract gives it (the key beside `cert_file`); `private_key_file`
    /// is the older name: one of them, not both.
    cert_key_file: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
    /// The API v3 key: WeChat uses it only to encrypt notifications and
    /// certificate downloads, which a till does not take; checked if given.
    api_key_file: Option<PathBuf>,
    cert_serial_no: Option<String>,
    cert_file: Option<PathBuf>,
    wechatpay_public_key_id: Option<String>,
    wechatpay_public_key_file: Option<PathBuf>,
    platform_cert_files: Option<Vec<PathBuf>>,
    store_id: Option<String>,
    ca_file: Option<PathBuf>,
    min_reverse_delay_ms: Option<u64>,
}

/// The prefix WeChat gives the ids of its public keys.
pub const PUBLIC_KEY_ID_PREFIX: &str = "PUB_KEY_ID_";

/// Checks a `[wechat]` table with `api = "v3"`; `base` anchors relative paths.
// Long because the table has many keys; each check is a few lines and independent.
pub fn check(table: toml::Value, base: &Path) -> Result<WechatV3Config, SetupError> {
    let raw: RawV3 = table
        .try_into()
        .map_err(|e: toml::de::Error| invalid("wechat", e.message()))?;
    let base_url = raw
        .base_url
        .unwrap_or_else(|| "https://api.mch.weixin.qq.com".to_string());
    check_url(&base_url, "wechat.base_url")?;
    let backup_url = crate::gateway::wechat::config::backup(raw.backup_base_url, &base_url)?;
    let appid = nonempty(raw.appid, "wechat.appid")?;
    let mch_id = nonempty(raw.mch_id, "wechat.mch_id")?;
    let account = match raw.sub_mch_id.filter(|s| !s.is_empty()) {
        None => Account::Direct {
            appid,
            mchid: mch_id,
        },
        Some(sub_mchid) => Account::Partner {
            sp_appid: appid,
            sp_mchid: mch_id,
            sub_mchid,
            sub_appid: raw.sub_appid.filter(|s| !s.is_empty()),
        },
    };
    let (key_name, key_file) = match (raw.cert_key_file, raw.private_key_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "wechat.private_key_file",
                "give the signing key once, as wechat.cert_key_file",
            ))
        }
        (Some(p), None) => ("wechat.cert_key_file", p),
        (None, Some(p)) => ("wechat.private_key_file", p),
        (None, None) => {
            return Err(invalid(
                "wechat.cert_key_file",
                "is required (apiclient_key.pem, the key of the merchant API certificate)",
            ))
        }
    };
    let key_file = resolve(base, key_file);
    let private_key_pem = read_secret(&key_file, key_name)?;
    crate::gateway::rsa::parse_private_key(&private_key_pem)
        .map_err(|e| invalid(key_name, format!("{}: {e}", key_file.display())))?;
    if let Some(p) = raw.api_key_file {
        let key = read_secret(&resolve(base, p), "wechat.api_key_file")?;
        if key.trim().len() != 32 {
            return Err(invalid(
                "wechat.api_key_file",
                "the API v3 key is 32 characters",
            ));
        }
    }
    let merchant_cert = match raw.cert_file {
        Some(p) => {
            let p = resolve(base, p);
            let pem = read_public(&p, "wechat.cert_file")?;
            cert::serial_hex(&pem)
                .map_err(|e| invalid("wechat.cert_file", format!("{}: {e}", p.display())))?;
            Some((p, pem))
        }
        None => None,
    };
    let cert_serial_no = match (raw.cert_serial_no, &merchant_cert) {
        (Some(s), _) => normal_serial(&s, "wechat.cert_serial_no")?,
        (None, Some((p, pem))) => cert::serial_hex(pem)
            .map_err(|e| invalid("wechat.cert_file", format!("{}: {e}", p.display())))?,
        (None, None) => {
            return Err(invalid(
                "wechat.cert_serial_no",
                "is required (the serial of the merchant API certificate, shown in the merchant \
                 portal under API安全), or give wechat.cert_file to read it from",
            ))
        }
    };
    let answer_keys = answer_keys(
        base,
        raw.wechatpay_public_key_id,
        raw.wechatpay_public_key_file,
        raw.platform_cert_files.unwrap_or_default(),
    )?;
    let ca_pem = match raw.ca_file {
        Some(p) => Some(read_public(&resolve(base, p), "wechat.ca_file")?),
        None => None,
    };
    let min_reverse_delay = Duration::from_millis(raw.min_reverse_delay_ms.unwrap_or(15_000));
    if min_reverse_delay < Duration::from_millis(15_000) && !base_url.starts_with("http://") {
        return Err(invalid(
            "wechat.min_reverse_delay_ms",
            "WeChat forbids a reverse sooner than 15000 ms after code pay; only a simulator (http:// base_url) may use less",
        ));
    }
    let store_id = raw.store_id.filter(|s| !s.is_empty());
    if store_id.as_ref().is_some_and(|s| s.len() > 32) {
        return Err(invalid("wechat.store_id", "must be at most 32 characters"));
    }
    Ok(WechatV3Config {
        base_url: base_url.trim_end_matches('/').to_string(),
        backup_url,
        account,
        private_key_pem,
        cert_serial_no,
        merchant_cert,
        answer_keys,
        store_id,
        ca_pem,
        min_reverse_delay,
    })
}

/// A certificate serial as hex, upper case (the portal prints it so;
/// `Wechatpay-Serial` is compared without regard to case anyway).
fn normal_serial(s: &str, key: &str) -> Result<String, SetupError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            key,
            format!("{s:?} is not a certificate serial number (hexadecimal)"),
        ));
    }
    Ok(s.to_ascii_uppercase())
}

fn answer_keys(
    base: &Path,
    public_key_id: Option<String>,
    public_key_file: Option<PathBuf>,
    platform_certs: Vec<PathBuf>,
) -> Result<Vec<AnswerKey>, SetupError> {
    let mut keys = Vec::new();
    match (public_key_id, public_key_file) {
        (Some(id), Some(file)) => {
            let id = id.trim().to_string();
            let rest = id.strip_prefix(PUBLIC_KEY_ID_PREFIX).unwrap_or("");
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(invalid(
                    "wechat.wechatpay_public_key_id",
                    format!("{id:?} is not a WeChat Pay public key id (PUB_KEY_ID_ and digits, from the merchant portal)"),
                ));
            }
            let file = resolve(base, file);
            let text = read_public(&file, "wechat.wechatpay_public_key_file")?;
            let public_key = crate::gateway::rsa::parse_public_key(&text).map_err(|e| {
                invalid(
                    "wechat.wechatpay_public_key_file",
                    format!("{}: {e}", file.display()),
                )
            })?;
            keys.push(AnswerKey {
                id,
                public_key,
                file,
                cert_pem: None,
            });
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(invalid(
                "wechat.wechatpay_public_key_file",
                "is required with wechat.wechatpay_public_key_id",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "wechat.wechatpay_public_key_id",
                "is required with wechat.wechatpay_public_key_file",
            ))
        }
    }
    for file in platform_certs {
        let file = resolve(base, file);
        let pem = read_public(&file, "wechat.platform_cert_files")?;
        let bad = |e: String| invalid("wechat.platform_cert_files", format!("{}: {e}", file.display()));
        let id = cert::serial_hex(&pem).map_err(bad)?;
        let public_key = cert::public_key(&pem).map_err(bad)?;
        keys.push(AnswerKey {
            id,
            public_key,
            file,
            cert_pem: Some(pem),
        });
    }
    if keys.is_empty() {
        return Err(invalid(
            "wechat.wechatpay_public_key_id",
            "API v3 answers must be verified: give the WeChat Pay public key \
             (wechat.wechatpay_public_key_id and wechat.wechatpay_public_key_file) or \
             wechat.platform_cert_files, or both while migrating",
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;
