//! The `[alipay]` table: its keys, their checks, and the Alipay settings
//! the gateway client is built from.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::gateway::setup::{
    check_url, invalid, nonempty, read_public, read_secret, required, resolve, SetupError,
};

#[derive(Clone)]
pub struct AlipayConfig {
    pub gateway_url: String,
    pub app_id: String,
    /// Key text as found in the files (PEM or bare base64); the Alipay
    /// gateway module parses it and names the file when it cannot.
    pub app_private_key: String,
    pub app_private_key_file: PathBuf,
    pub alipay_public_key: String,
    pub alipay_public_key_file: PathBuf,
    /// Extra CA certificates (PEM), as `WechatConfig::ca_pem`.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for AlipayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlipayConfig")
            .field("gateway_url", &self.gateway_url)
            .field("app_id", &self.app_id)
            .field("app_private_key_file", &self.app_private_key_file)
            .field("alipay_public_key_file", &self.alipay_public_key_file)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlipay {
    gateway_url: Option<String>,
    app_id: Option<String>,
    app_private_key_file: Option<PathBuf>,
    alipay_public_key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

/// Checks the `[alipay]` table; `base` anchors relative paths.
pub fn check(table: toml::Value, base: &Path) -> Result<AlipayConfig, SetupError> {
    let raw: RawAlipay = table
        .try_into()
        .map_err(|e: toml::de::Error| invalid("alipay", e.message()))?;
    let gateway_url = raw
        .gateway_url
        .unwrap_or_else(|| "https://openapi.alipay.com/gateway.do".to_string());
    check_url(&gateway_url, "alipay.gateway_url")?;
    let app_id = nonempty(raw.app_id, "alipay.app_id")?;
    let private_file = resolve(
        base,
        required(raw.app_private_key_file, "alipay.app_private_key_file")?,
    );
    let public_file = resolve(
        base,
        required(raw.alipay_public_key_file, "alipay.alipay_public_key_file")?,
    );
    Ok(AlipayConfig {
        gateway_url,
        app_id,
        app_private_key: read_secret(&private_file, "alipay.app_private_key_file")?,
        app_private_key_file: private_file,
        alipay_public_key: read_public(&public_file, "alipay.alipay_public_key_file")?,
        alipay_public_key_file: public_file,
        ca_pem: match raw.ca_file {
            Some(p) => Some(read_public(&resolve(base, p), "alipay.ca_file")?),
            None => None,
        },
    })
}
