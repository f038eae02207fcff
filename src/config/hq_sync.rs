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
    // The relay channel's keys, read by `gateway/hq`: listed so that a
    // misspelt key is still refused here.
    #[allow(dead_code)]
    relay: Option<bool>,
    #[allow(dead_code)]
    min_revoke_delay_ms: Option<u64>,
}

pub(super) fn check(raw: RawHq, base: &Path) -> Result<HqConfig, ConfigError> {
    let url = setup::secret_url(raw.url, "hq.url")?;
    let token_file = setup::resolve(base, setup::required(raw.token_file, "hq.token_file")?);
    let token = setup::read_token(
        &token_file,
        "hq.token_file",
        "the till's token from `tillpay-hq till add`",
    )?;
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
