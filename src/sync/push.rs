//! The pusher: read the next batch after the high-water mark, post it,
//! record HQ's answer; back off while HQ cannot be reached.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wire;
use crate::config::HqConfig;
use crate::journal::Journal;

/// What the till can say about its sync (for `status` and `doctor`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncStatus {
    /// Every event up to this id is kept at HQ.
    pub high_water: i64,
    /// Wall-clock ms of the last answer from HQ.
    pub last_ok_at: Option<i64>,
    /// Why the last try failed, while it is failing.
    pub failing: Option<String>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs until the daemon stops.
pub async fn run(journal: Arc<Journal>, cfg: HqConfig, status: Arc<Mutex<SyncStatus>>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "HQ sync cannot start");
            return;
        }
    };
    let idle = Duration::from_millis(cfg.sync_interval_ms);
    let mut backoff = Duration::from_secs(1);
    loop {
        match step(&journal, &client, &cfg).await {
            Ok((high_water, more)) => {
                {
                    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
                    if s.failing.take().is_some() {
                        tracing::info!(high_water, "HQ sync: reachable again");
                    }
                    s.high_water = high_water;
                    s.last_ok_at = Some(crate::journal::now_ms());
                }
                backoff = Duration::from_secs(1);
                if !more {
                    tokio::time::sleep(idle).await;
                }
            }
            Err(why) => {
                {
                    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
                    if s.failing.as_deref() != Some(why.as_str()) {
                        tracing::warn!(error = %why, retry_in_s = backoff.as_secs(), "HQ sync failed: sales go on, sync retries");
                    }
                    s.failing = Some(why);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One batch: HQ's high-water mark after it, and whether to go on at once.
async fn step(
    journal: &Arc<Journal>,
    client: &reqwest::Client,
    cfg: &HqConfig,
) -> Result<(i64, bool), String> {
    let j = journal.clone();
    let batch = tokio::task::spawn_blocking(move || {
        let after = j.hq_high_water()?.unwrap_or(0);
        j.outbox(after, wire::MAX_EVENTS)
    })
    .await
    .map_err(|e| format!("reading the outbox: {e}"))?
    .map_err(|e| format!("reading the outbox: {e}"))?;
    let Some(last) = batch.events.last().map(|e| e.id) else {
        return Ok((batch.after, false));
    };
    let full = batch.events.len() >= wire::MAX_EVENTS;
    let body = serde_json::to_vec(&batch).map_err(|e| format!("encoding a batch: {e}"))?;
    let res = client
        .post(format!("{}{}", cfg.url, wire::SYNC_PATH))
        .bearer_auth(&cfg.token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{}: {}", cfg.url, without_url(&e)))?;
    let code = res.status();
    let body = res
        .bytes()
        .await
        .map_err(|e| format!("{}: {}", cfg.url, without_url(&e)))?;
    if !code.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(format!(
            "HQ answered {code}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let answer: wire::Answer = serde_json::from_slice(&body)
        .map_err(|e| format!("HQ's answer is not a sync answer: {e}"))?;
    let j = journal.clone();
    let hw = answer.high_water;
    tokio::task::spawn_blocking(move || j.set_hq_high_water(hw))
        .await
        .map_err(|e| format!("recording HQ's answer: {e}"))?
        .map_err(|e| format!("recording HQ's answer: {e}"))?;
    // On at once while there is more and HQ took what was sent; HQ asking
    // for earlier events (it lost some) is progress too.
    let progressed = hw != batch.after;
    Ok((hw, progressed && (full || hw < last)))
}

/// reqwest's error text without the URL it repeats.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" for url ({u})"), "");
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
