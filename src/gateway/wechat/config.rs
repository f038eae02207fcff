//! The `[wechat]` table: its keys, their checks, and the WeChat Pay
//! settings the gateway client is built from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::sign::SignType as WechatSignType;
use crate::gateway::setup::{
    check_url, invalid, nonempty, read_public, read_secret, required, resolve, SetupError,
};

#[derive(Clone)]
pub struct WechatConfig {
    pub base_url: String,
    /// Where a request goes when `base_url` cannot be connected to: WeChat's
    /// disaster-recovery domain by default for WeChat's own primary.
    pub backup_url: Option<String>,
    pub appid: String,
    pub mch_id: String,
    pub sub_mch_id: Option<String>,
    pub sub_appid: Option<String>,
    /// The API v2 key, read from `api_key_file`.
    pub api_key: String,
    pub sign_type: WechatSignType,
    /// PEM text of the client certificate and its key, for /secapi/ calls.
    /// `None` only with an `http://` base URL (a simulator).
    pub client_identity: Option<ClientIdentity>,
    /// Extra CA certificates (PEM) the gateway's server certificate may
    /// chain to: a shop's TLS-inspecting proxy, or a test gateway. The
    /// built-in public roots are trusted either way.
    pub ca_pem: Option<String>,
    /// WeChat forbids a reverse sooner than 15 s after micropay. Only a
    /// simulator may be configured with less.
    pub min_reverse_delay: Duration,
}

impl std::fmt::Debug for WechatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatConfig")
            .field("base_url", &self.base_url)
            .field("backup_url", &self.backup_url)
            .field("appid", &self.appid)
            .field("mch_id", &self.mch_id)
            .field("sub_mch_id", &self.sub_mch_id)
            .field("api_key", &"<secret>")
            .field("sign_type", &self.sign_type)
            .finish()
    }
}

#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWechat {
    #[allow(dead_code)] // checked by `channel`: it chose this table's kind
    api: Option<String>,
    base_url: Option<String>,
    backup_base_url: Option<String>,
    appid: Option<String>,
    mch_id: Option<String>,
    sub_mch_id: Option<String>,
    sub_appid: Option<String>,
    api_key_file: Option<PathBuf>,
    sign_type: Option<String>,
    cert_file: Option<PathBuf>,
    cert_key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    min_reverse_delay_ms: Option<u64>,
}

/// Checks the `[wechat]` table; `base` anchors relative paths.
// Long because the `[wechat]` table has many keys; each check is a few lines and independent.
pub fn check(table: toml::Value, base: &Path) -> Result<WechatConfig, SetupError> {
    let raw: RawWechat = table
        .try_into()
        .map_err(|e: toml::de::Error| invalid("wechat", e.message()))?;
    let base_url = raw
        .base_url
        .unwrap_or_else(|| "https://api.mch.weixin.qq.com".to_string());
    check_url(&base_url, "wechat.base_url")?;
    let backup_url = backup(raw.backup_base_url, &base_url)?;
    let sign_type = match raw.sign_type.as_deref().unwrap_or("HMAC-SHA256") {
        "HMAC-SHA256" => WechatSignType::HmacSha256,
        "MD5" => WechatSignType::Md5,
        other => {
            return Err(invalid(
                "wechat.sign_type",
                format!("{other:?} must be \"HMAC-SHA256\" or \"MD5\""),
            ))
        }
    };
    let key_file = resolve(base, required(raw.api_key_file, "wechat.api_key_file")?);
    let api_key = read_secret(&key_file, "wechat.api_key_file")?
        .trim()
        .to_string();
    if api_key.len() != 32 || !api_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "wechat.api_key_file",
            format!(
                "{} must hold the 32-character API v2 key and nothing else",
                key_file.display()
            ),
        ));
    }
    let client_identity = match (raw.cert_file, raw.cert_key_file) {
        (Some(cert), Some(key)) => {
            let cert = resolve(base, cert);
            let key = resolve(base, key);
            Some(ClientIdentity {
                cert_pem: read_public(&cert, "wechat.cert_file")?,
                key_pem: read_secret(&key, "wechat.cert_key_file")?,
                cert_file: cert,
            })
        }
        (None, None) if base_url.starts_with("http://") => None,
        (None, None) => return Err(invalid(
            "wechat.cert_file",
            "is required with an https:// base_url: reverse and refund need the client certificate",
        )),
        (Some(_), None) => {
            return Err(invalid(
                "wechat.cert_key_file",
                "is required with wechat.cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "wechat.cert_file",
                "is required with wechat.cert_key_file",
            ))
        }
    };
    let ca_pem = match raw.ca_file {
        Some(p) => Some(read_public(&resolve(base, p), "wechat.ca_file")?),
        None => None,
    };
    let min_reverse_delay = Duration::from_millis(raw.min_reverse_delay_ms.unwrap_or(15_000));
    if min_reverse_delay < Duration::from_millis(15_000) && !base_url.starts_with("http://") {
        return Err(invalid(
            "wechat.min_reverse_delay_ms",
            "WeChat forbids a reverse sooner than 15000 ms after micropay; only a simulator (http:// base_url) may use less",
        ));
    }
    Ok(WechatConfig {
        base_url: base_url.trim_end_matches('/').to_string(),
        backup_url,
        appid: nonempty(raw.appid, "wechat.appid")?,
        mch_id: nonempty(raw.mch_id, "wechat.mch_id")?,
        sub_mch_id: raw.sub_mch_id.filter(|s| !s.is_empty()),
        sub_appid: raw.sub_appid.filter(|s| !s.is_empty()),
        api_key,
        sign_type,
        client_identity,
        ca_pem,
        min_reverse_delay,
    })
}

/// `backup_base_url`: WeChat's backup domain by default for WeChat's primary,
/// none for another base URL; `""` turns it off.
pub(super) fn backup(
    key: Option<String>,
    base_url: &str,
) -> Result<Option<String>, SetupError> {
    match key {
        None => Ok(super::failover::default_backup(base_url)),
        Some(b) if b.trim().is_empty() => Ok(None),
        Some(b) => {
            check_url(&b, "wechat.backup_base_url")?;
            Ok(Some(b.trim_end_matches('/').to_string()))
        }
    }
}
