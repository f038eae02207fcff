//! The `[acquirer]` table: the acquirer's gateway, the merchant number it
//! gave the shop, and how requests are signed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::gateway::setup::{
    check_url, invalid, nonempty, read_public, read_secret, required, resolve, SetupError,
};

/// How the merchant signs, with the key material it needs.
#[derive(Clone)]
pub enum Keys {
    /// `MD5` with the merchant key the acquirer issued.
    Md5 { key: String },
    /// `RSA_1_256`: the merchant's private key (PEM) and the acquirer's
    /// public key (PKCS#1 DER).
    Rsa {
        private_key_pem: String,
        platform_key: Vec<u8>,
    },
}

#[derive(Clone)]
pub struct AcquirerConfig {
    /// `…/pay/gateway`.
    pub gateway_url: String,
    /// Where the merchant bill is downloaded (SwiftPass serves it apart).
    pub bill_url: String,
    pub mch_id: String,
    pub keys: Keys,
    /// `op_user_id`: the acquirer's default is the merchant number.
    pub op_user_id: Option<String>,
    /// `op_shop_id`: the shop, as the acquirer numbers it.
    pub shop_id: Option<String>,
    pub ca_pem: Option<String>,
    /// WeChat's 15 s rule holds for its codes whatever the route.
    pub min_reverse_delay: Duration,
}

impl std::fmt::Debug for AcquirerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.keys {
            Keys::Md5 { .. } => "MD5",
            Keys::Rsa { .. } => "RSA_1_256",
        };
        f.debug_struct("AcquirerConfig")
            .field("gateway_url", &self.gateway_url)
            .field("mch_id", &self.mch_id)
            .field("sign_type", &sign)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    gateway_url: Option<String>,
    bill_url: Option<String>,
    mch_id: Option<String>,
    sign_type: Option<String>,
    key_file: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
    platform_public_key_file: Option<PathBuf>,
    op_user_id: Option<String>,
    shop_id: Option<String>,
    ca_file: Option<PathBuf>,
    min_reverse_delay_ms: Option<u64>,
}

/// SwiftPass's bill host; other acquirers name theirs.
const SWIFTPASS_BILLS: &str = "https://download.swiftpass.cn/gateway";

/// Checks the `[acquirer]` table; `base` anchors relative paths.
// Long because the table has many keys; each check is a few lines and independent.
pub fn check(table: toml::Value, base: &Path) -> Result<AcquirerConfig, SetupError> {
    let raw: Raw = table
        .try_into()
        .map_err(|e: toml::de::Error| invalid("acquirer", e.message()))?;
    // No default: every acquirer has its own host.
    let gateway_url = required(raw.gateway_url, "acquirer.gateway_url")?;
    check_url(&gateway_url, "acquirer.gateway_url")?;
    let bill_url = raw.bill_url.unwrap_or_else(|| SWIFTPASS_BILLS.to_string());
    check_url(&bill_url, "acquirer.bill_url")?;
    let keys = match raw.sign_type.as_deref().unwrap_or("MD5") {
        "MD5" => {
            let file = resolve(base, required(raw.key_file, "acquirer.key_file")?);
            let key = read_secret(&file, "acquirer.key_file")?.trim().to_string();
            if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    "acquirer.key_file",
                    format!("{} must hold the merchant key and nothing else", file.display()),
                ));
            }
            Keys::Md5 { key }
        }
        "RSA_1_256" => {
            let key_file = resolve(base, required(raw.private_key_file, "acquirer.private_key_file")?);
            let private_key_pem = read_secret(&key_file, "acquirer.private_key_file")?;
            crate::gateway::rsa::parse_private_key(&private_key_pem).map_err(|e| {
                invalid("acquirer.private_key_file", format!("{}: {e}", key_file.display()))
            })?;
            let pub_file = resolve(
                base,
                required(raw.platform_public_key_file, "acquirer.platform_public_key_file")?,
            );
            let text = read_public(&pub_file, "acquirer.platform_public_key_file")?;
            let platform_key = crate::gateway::rsa::parse_public_key(&text).map_err(|e| {
                invalid("acquirer.platform_public_key_file", format!("{}: {e}", pub_file.display()))
            })?;
            Keys::Rsa {
                private_key_pem,
                platform_key,
            }
        }
        other => {
            return Err(invalid(
                "acquirer.sign_type",
                format!("{other:?} must be \"MD5\" or \"RSA_1_256\" (whichever the acquirer issued)"),
            ))
        }
    };
    let ca_pem = match raw.ca_file {
        Some(p) => Some(read_public(&resolve(base, p), "acquirer.ca_file")?),
        None => None,
    };
    let min_reverse_delay = Duration::from_millis(raw.min_reverse_delay_ms.unwrap_or(15_000));
    if min_reverse_delay < Duration::from_millis(15_000) && !gateway_url.starts_with("http://") {
        return Err(invalid(
            "acquirer.min_reverse_delay_ms",
            "WeChat forbids a reverse sooner than 15000 ms after the payment, through any route; only a simulator (http://) may use less",
        ));
    }
    Ok(AcquirerConfig {
        gateway_url,
        bill_url,
        mch_id: nonempty(raw.mch_id, "acquirer.mch_id")?,
        keys,
        op_user_id: raw.op_user_id.filter(|s| !s.is_empty()),
        shop_id: raw.shop_id.filter(|s| !s.is_empty()),
        ca_pem,
        min_reverse_delay,
    })
}
