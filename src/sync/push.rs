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
    loop {
        match step(&engine, &journal, &client, &cfg).await {
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
) -> Result<(i64, bool), String> {
    let j = journal.clone();
    let (mut batch, (newest, archived), mut results) = tokio::task::spawn_blocking(move || {
        let after = j.hq_high_water()?.unwrap_or(0);
        let mut batch = j.outbox(after, wire::MAX_EVENTS)?;
        batch.shifts = j.closed_shifts_after(j.hq_shift_mark()?, wire::MAX_SHIFTS)?;
        Ok::<_, crate::journal::JournalError>((batch, j.sync_bounds()?, j.hq_results()?))
    })
    .await
    .map_err(|e| format!("reading the outbox: {e}"))?
    .map_err(|e| format!("reading the outbox: {e}"))?;
    batch.done = results
        .iter()
        .filter(|(_, reported)| !reported)
        .map(|(d, _)| d.clone())
        .collect();
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
    let hw = answer.high_water;
    // A mark this journal cannot back would skip events for good: HQ
    // holds another journal's history under this till id (a reinstalled
    // till), or HQ lost events that have since left for the archive.
    if hw > newest {
        return Err(format!(
            "HQ says it has this till's events up to {hw}, but this journal has only up to {newest}:              HQ holds another journal under till id {}; nothing more is synced until an operator sorts it out",
            batch.till_id
        ));
    }
    if hw < archived {
        return Err(format!(
            "HQ asks for events from {hw}, but those up to {archived} have left for the archive:              HQ has lost history it had acknowledged (restored from a backup?); nothing more is synced              until an operator sorts it out"
        ));
    }
    // HQ has the results it was sent; now what it asks. A command carried
    // out before (and delivered again) is answered from its kept result.
    for r in results.iter_mut() {
        r.1 = true;
    }
    let mut carried = false;
    for c in &answer.commands {
        if let Some(r) = results.iter_mut().find(|(d, _)| d.id == c.id) {
            r.1 = false;
            continue;
        }
        let result = carry_out(engine, c).await;
        tracing::info!(command = c.id, ok = result.ok, result = %result.message, "HQ's command carried out");
        results.push((result, false));
        carried = true;
        // Kept before the next is carried out: a restart in between
        // answers this one from the journal.
        let (j, kept) = (journal.clone(), results.clone());
        tokio::task::spawn_blocking(move || j.set_hq_results(&kept))
            .await
            .map_err(|e| format!("recording a command's result: {e}"))?
            .map_err(|e| format!("recording a command's result: {e}"))?;
    }
    // The newest few hundred are enough to recognise a command again.
    let keep = results.len().saturating_sub(500);
    results.drain(..keep);
    let j = journal.clone();
    let pending = results.iter().any(|(_, reported)| !reported);
    let shift_mark = batch.shifts.last().map(|s| s.shift_no);
    let more_shifts = batch.shifts.len() >= wire::MAX_SHIFTS;
    tokio::task::spawn_blocking(move || {
        j.set_hq_high_water(hw)?;
        if let Some(m) = shift_mark {
            j.set_hq_shift_mark(m)?;
        }
        j.set_hq_results(&results)
    })
    .await
    .map_err(|e| format!("recording HQ's answer: {e}"))?
    .map_err(|e| format!("recording HQ's answer: {e}"))?;
    // On at once while there is more and HQ took what was sent (HQ asking
    // for earlier events, having lost some, is progress too), or to report
    // what its commands came to.
    let progressed = hw != batch.after;
    Ok((
        hw,
        carried
            || more_shifts
            || pending && !answer.commands.is_empty()
            || (progressed && (full || hw < last)),
    ))
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
        wire::Order::Unknown => Err(crate::engine::EngineError::InvalidParams(
            "this till does not know that command: upgrade tillpay".into(),
        )),
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
