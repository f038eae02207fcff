//! `[hq]`: the merchant's HQ this till syncs its journal to. Off unless the
//! table is there; every key that can be wrong is named.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::gateway::setup;

#[derive(Clone)]
pub struct HqConfig {
    /// HQ's base URL (`https://…`; plain `http://` only to a loopback
    /// address, as in tests and a local relay).
    pub url: String,
    /// This till's bearer token at HQ (from `token_file`).
    pub token: String,
    /// How often to look for new events once caught up.
    pub sync_interval_ms: u64,
}

impl std::fmt::Debug for HqConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HqConfig")
            .field("url", &self.url)
            .field("token", &"<secret>")
            .field("sync_interval_ms", &self.sync_interval_ms)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHq {
    url: Option<String>,
    token_file: Option<PathBuf>,
    sync_interval_ms: Option<u64>,
}

pub(super) fn check(raw: RawHq, base: &Path) -> Result<HqConfig, ConfigError> {
    let url = setup::required(raw.url, "hq.url")?
        .trim_end_matches('/')
        .to_string();
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
        (Some(rest), _) if !host_of(rest).is_empty() => {}
        (_, Some(rest)) if loopback(&host_of(rest)) => {}
        (_, Some(_)) => {
            return Err(invalid(
                "hq.url",
                format!("{url}: the till's token and sales cross the network: use https://"),
            ))
        }
        _ => {
            return Err(invalid(
                "hq.url",
                format!("{url:?} is not a URL such as \"https://hq.example.com\""),
            ))
        }
    }
    let token_file = setup::resolve(base, setup::required(raw.token_file, "hq.token_file")?);
    let token = setup::read_secret(&token_file, "hq.token_file")?
        .trim()
        .to_string();
    if token.len() < 24 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "hq.token_file",
            format!(
                "{} must hold the till's token from `tillpay-hq till add` (24 characters or more)",
                token_file.display()
            ),
        ));
    }
    let sync_interval_ms = raw.sync_interval_ms.unwrap_or(2000);
    if !(100..=3_600_000).contains(&sync_interval_ms) {
        return Err(invalid(
            "hq.sync_interval_ms",
            format!("{sync_interval_ms} is outside 100..=3600000"),
        ));
    }
    Ok(HqConfig {
        url,
        token,
        sync_interval_ms,
    })
}
