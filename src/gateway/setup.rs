//! Setting a channel up from its config table: the error that names the
//! key at fault, and the checks every channel's table uses (required keys,
//! URLs, relative paths, secret files readable by their owner only).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A channel that cannot be set up from its config: `key` is the config key
/// at fault (`wechat.cert_file`, `alipay.gateway_url`, …), `message` says
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SetupError {
    pub key: String,
    pub message: String,
}

impl From<String> for SetupError {
    /// From a message that begins with the config key ("wechat.base_url
    /// \"x\": no host"): the key is split off.
    fn from(text: String) -> SetupError {
        let end = text.find([' ', ':']).unwrap_or(text.len());
        let (key, rest) = text.split_at(end);
        SetupError {
            key: key.to_string(),
            message: rest.trim_start_matches([':', ' ']).to_string(),
        }
    }
}

/// The CA certificates of a `ca_file` (PEM bundle), to trust beside the
/// built-in public roots. `key` names the config key in errors.
pub(crate) fn extra_roots(
    pem: Option<&str>,
    key: &str,
) -> Result<Vec<reqwest::Certificate>, SetupError> {
    let Some(pem) = pem else {
        return Ok(Vec::new());
    };
    match reqwest::Certificate::from_pem_bundle(pem.as_bytes()) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(format!("{key}: no PEM certificate in it").into()),
        Err(e) => Err(format!("{key}: not a PEM certificate bundle: {e}").into()),
    }
}

pub(crate) fn invalid(key: &str, message: impl Into<String>) -> SetupError {
    SetupError {
        key: key.to_string(),
        message: message.into(),
    }
}

pub fn required<T>(v: Option<T>, key: &str) -> Result<T, SetupError> {
    v.ok_or_else(|| invalid(key, "is required"))
}

pub fn check_url(url: &str, key: &str) -> Result<(), SetupError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid(
            key,
            format!("{url:?} must start with https:// or http://"),
        ));
    }
    Ok(())
}

/// A required value of 1-32 characters (app ids, merchant numbers).
pub fn nonempty(v: Option<String>, key: &str) -> Result<String, SetupError> {
    let v = required(v, key)?;
    if v.trim().is_empty() || v.len() > 32 {
        return Err(invalid(key, "must be 1-32 characters"));
    }
    Ok(v)
}

/// A path of the config, relative to the config file's folder.
pub fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

pub fn read_public(path: &Path, key: &str) -> Result<String, SetupError> {
    std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
}

/// Reads a secret file, refusing one that group or others may read, as
/// OpenSSH does for private keys.
pub fn read_secret(path: &Path, key: &str) -> Result<String, SetupError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(invalid(
            key,
            format!(
                "{} is readable by group or others (mode {mode:04o}); it holds a secret: run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
        ));
    }
    read_public(path, key)
}

/// A URL that a secret travels to: `https://`, or plain `http://` only to
/// a loopback address (tests, a relay on the same machine). Trailing
/// slashes are dropped.
pub fn secret_url(url: Option<String>, key: &str) -> Result<String, SetupError> {
    let url = required(url, key)?.trim_end_matches('/').to_string();
    let loopback = |host: &str| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    let host_of = |rest: &str| {
        let authority = rest.split('/').next().unwrap_or_default();
        match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
            _ => authority.to_string(),
        }
    };
    match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) if !host_of(rest).is_empty() => Ok(url),
        (_, Some(rest)) if loopback(&host_of(rest)) => Ok(url),
        (_, Some(_)) => Err(invalid(
            key,
            format!("{url}: the till's token and sales cross the network: use https://"),
        )),
        _ => Err(invalid(
            key,
            format!("{url:?} is not a URL such as \"https://hq.example.com\""),
        )),
    }
}

/// A bearer token from a secret file (mode 0600): one line of 24 or more
/// printable characters. `what` says where it comes from, for the error.
pub fn read_token(path: &Path, key: &str, what: &str) -> Result<String, SetupError> {
    let token = read_secret(path, key)?.trim().to_string();
    if token.len() < 24 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            key,
            format!(
                "{} must hold {what} (24 characters or more)",
                path.display()
            ),
        ));
    }
    Ok(token)
}
