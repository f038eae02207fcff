//! The pusher: read the next batch after the high-water mark, post it,
//! record HQ's answer; back off while HQ cannot be reached.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wire;
use crate::config::HqConfig;
use crate::engine::{Engine, ResolveRequest};
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
pub async fn run(engine: Arc<Engine>, cfg: HqConfig, status: Arc<Mutex<SyncStatus>>) {
    let journal = engine.journal().clone();
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
    // Results of HQ's commands not yet reported (kept until an answer
    // shows HQ has them).
    let mut done: Vec<wire::Done> = Vec::new();
    loop {
        match step(&engine, &journal, &client, &cfg, &mut done).await {
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

/// One batch (an empty one when there is nothing new: it asks HQ for
/// commands): HQ's high-water mark after it, and whether to go on at once.
async fn step(
    engine: &Arc<Engine>,
    journal: &Arc<Journal>,
    client: &reqwest::Client,
    cfg: &HqConfig,
    done: &mut Vec<wire::Done>,
) -> Result<(i64, bool), String> {
    let j = journal.clone();
    let mut batch = tokio::task::spawn_blocking(move || {
        let after = j.hq_high_water()?.unwrap_or(0);
        j.outbox(after, wire::MAX_EVENTS)
    })
    .await
    .map_err(|e| format!("reading the outbox: {e}"))?
    .map_err(|e| format!("reading the outbox: {e}"))?;
    batch.done = done.clone();
    let last = batch.events.last().map_or(batch.after, |e| e.id);
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
    // HQ has the results it was sent; now what it asks.
    done.clear();
    for c in &answer.commands {
        let result = carry_out(engine, c).await;
        tracing::info!(command = c.id, ok = result.ok, result = %result.message, "HQ's command carried out");
        done.push(result);
    }
    // On at once while there is more and HQ took what was sent (HQ asking
    // for earlier events, having lost some, is progress too), or to report
    // what its commands came to.
    let progressed = hw != batch.after;
    Ok((hw, !done.is_empty() || (progressed && (full || hw < last))))
}

/// Carries out one of HQ's commands through the engine, as a POS request
/// would be.
async fn carry_out(engine: &Arc<Engine>, c: &wire::Command) -> wire::Done {
    let result = match c.what.clone() {
        wire::Order::Resolve {
            order_no,
            as_paid,
            transaction_id,
            paid_at,
            operator,
            note,
        } => engine
            .resolve(ResolveRequest {
                order_no,
                as_paid,
                transaction_id,
                paid_at,
                operator,
                note,
            })
            .await
            .map(|p| {
                serde_json::to_value(p.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            }),
        wire::Order::Refund {
            order_no,
            refund_no,
            amount,
            reason,
            operator_id,
        } => engine
            .refund(&order_no, &refund_no, amount, reason, operator_id)
            .await
            .map(|r| r.status),
    };
    match result {
        Ok(status) => wire::Done {
            id: c.id,
            ok: true,
            message: status,
        },
        Err(e) => wire::Done {
            id: c.id,
            ok: false,
            message: e.to_string(),
        },
    }
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
