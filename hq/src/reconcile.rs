//! Fleet reconciliation: the merchant's bills of one day, fetched once,
//! against every till's rows at HQ. Each till gets the same matching as
//! `tillpay reconcile` on the till (`tillpay::reconcile::matching`); what
//! no till can see is reported besides: bill rows of a till HQ does not
//! know, and tills that have not synced the whole day (a payment whose
//! till lost its journal, or never synced, shows as missing locally).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone};
use deadpool_postgres::Pool;
use serde::Serialize;
use tillpay::domain::{Fen, Provider};
use tillpay::gateway::{PaidBy, RevokeEffect};
use tillpay::journal::{AttemptRow, RefundRow, RefundStatus};
use tillpay::machine::{Attempt, Phase};
use tillpay::reconcile::{matching, Bill, BillRow, Discrepancy};

use crate::db::DbError;

#[derive(Debug, Clone, Serialize)]
pub struct TillResult {
    pub till_id: String,
    pub store_id: String,
    pub matched: u64,
    pub discrepancies: Vec<Discrepancy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnknownRow {
    pub provider: Provider,
    /// The till the bill names.
    pub till: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub kind: String,
    pub amount: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotSynced {
    pub till_id: String,
    pub store_id: String,
    /// Wall-clock ms of its last sync; null if it never synced.
    pub last_sync_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub date: String,
    pub matched: u64,
    pub tills: Vec<TillResult>,
    /// Bill rows whose till HQ has never heard of.
    pub unknown_till_rows: Vec<UnknownRow>,
    /// Tills whose last sync came before the day ended: HQ may lack some
    /// of their rows, and their discrepancies may close once they sync.
    pub not_synced: Vec<NotSynced>,
}

impl FleetReport {
    pub fn clean(&self) -> bool {
        self.unknown_till_rows.is_empty()
            && self.not_synced.is_empty()
            && self.tills.iter().all(|t| t.discrepancies.is_empty())
    }
}

fn kind_str(r: &BillRow) -> String {
    format!("{:?}", r.kind).to_lowercase()
}

/// Matches `bills` (every till's rows, parsed once) with every till's rows
/// at HQ for `date` (`YYYY-MM-DD`, the bills' day).
pub async fn reconcile(
    pool: &Pool,
    date: NaiveDate,
    bills: &[(Provider, Bill)],
) -> Result<FleetReport, DbError> {
    let client = pool.get().await?;
    let tills: BTreeMap<String, (String, Option<chrono::DateTime<chrono::Utc>>)> = client
        .query("SELECT till_id, store_id, last_sync_at FROM tills", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let day = date.to_string();
    // A refund is in the bill of the local day it was made.
    let start = date
        .and_hms_opt(0, 0, 0)
        .and_then(|t| chrono::Local.from_local_datetime(&t).earliest())
        .ok_or_else(|| DbError::Other(format!("day {date}")))?;
    let end = start + chrono::Duration::days(1);
    // The tills with rows at HQ near the day (each is loaded on its own
    // below, so memory holds one till's day at a time, beside the bills).
    let (before, after) = (
        date.pred_opt().unwrap_or(date),
        date.succ_opt().unwrap_or(date),
    );
    let with_rows: Vec<String> = client
        .query(
            "SELECT till_id FROM sales WHERE local_date BETWEEN $1 AND $2
             UNION SELECT till_id FROM attempts
                 WHERE paid_at IS NOT NULL AND left(paid_at, 10) BETWEEN $3 AND $4
             UNION SELECT till_id FROM refunds WHERE created_at >= $5 AND created_at < $6",
            &[
                &before,
                &after,
                &before.to_string(),
                &after.to_string(),
                &start,
                &end,
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Each till's part of each bill; rows of tills HQ does not know aside.
    let mut unknown = Vec::new();
    let mut per_till: BTreeMap<&str, Vec<(Provider, Bill)>> = BTreeMap::new();
    let mut seen: BTreeSet<&str> = with_rows.iter().map(String::as_str).collect();
    for (provider, bill) in bills {
        let mut parts: BTreeMap<&str, Vec<BillRow>> = BTreeMap::new();
        for row in &bill.rows {
            if row.provider != *provider {
                continue;
            }
            if tills.contains_key(&row.till) {
                parts
                    .entry(row.till.as_str())
                    .or_default()
                    .push(row.clone());
            } else {
                unknown.push(UnknownRow {
                    provider: row.provider,
                    till: row.till.clone(),
                    out_trade_no: row.out_trade_no.clone(),
                    transaction_id: row.transaction_id.clone(),
                    kind: kind_str(row),
                    amount: row.amount.0,
                });
            }
        }
        seen.extend(parts.keys().copied());
        // Every till reconciled gets each provider's bill, empty if need be.
        for till in seen.iter() {
            let rows = parts.remove(till).unwrap_or_default();
            per_till.entry(till).or_default().push((
                *provider,
                Bill {
                    total_rows: rows.len() as u64,
                    rows,
                    other_tills: 0,
                },
            ));
        }
    }
    let mut results = Vec::new();
    let mut matched = 0;
    for till in &seen {
        let mut own_bills = per_till.remove(till).unwrap_or_default();
        // A provider whose bill came before this till's first row there.
        for (provider, _) in bills {
            if !own_bills.iter().any(|(p, _)| p == provider) {
                own_bills.push((*provider, Bill::default()));
            }
        }
        let attempts = attempts_of(&client, till, date).await?;
        let refunds = refunds_of(&client, till, start, end).await?;
        let report = matching::reconcile(&day, &attempts, &refunds, &own_bills);
        matched += report.matched;
        results.push(TillResult {
            till_id: till.to_string(),
            store_id: tills.get(*till).map(|t| t.0.clone()).unwrap_or_default(),
            matched: report.matched,
            discrepancies: report.discrepancies,
        });
    }
    // A live till syncs at least once a minute; one silent since before
    // the day ended, for more than a few minutes, may hold rows HQ lacks.
    let quiet = chrono::Utc::now() - chrono::Duration::minutes(5);
    let not_synced = tills
        .iter()
        .filter(|(_, (_, last))| last.is_none_or(|l| l < end && l < quiet))
        .filter(|(till, _)| seen.contains(till.as_str()))
        .map(|(till, (store, last))| NotSynced {
            till_id: till.clone(),
            store_id: store.clone(),
            last_sync_at: last.map(|l| l.timestamp_millis()),
        })
        .collect();
    Ok(FleetReport {
        date: day,
        matched,
        tills: results,
        unknown_till_rows: unknown,
        not_synced,
    })
}

/// One till's attempts that belong to `date`.
async fn attempts_of(
    client: &deadpool_postgres::Client,
    till: &str,
    date: NaiveDate,
) -> Result<Vec<AttemptRow>, DbError> {
    let mut attempts = Vec::new();
    // As on the till: a booked attempt belongs to the local day of its
    // paid_at (the gateway's time; HQ runs in the merchant's time zone, as
    // its tills do: Beijing time, the bills' day), any other to its sale's
    // local day. SQL narrows to three days; the exact day is decided here.
    let (before, after) = (
        date.pred_opt().unwrap_or(date).to_string(),
        date.succ_opt().unwrap_or(date).to_string(),
    );
    let paid_day = |paid_at: &str| {
        chrono::DateTime::parse_from_rfc3339(paid_at)
            .ok()
            .map(|t| t.with_timezone(&chrono::Local).date_naive())
    };
    for r in client
        .query(
            "SELECT a.till_id, a.out_trade_no, a.order_no, a.seq, a.provider, a.channel, a.amount,
                    a.code_masked, a.phase, a.submitted_at, a.updated_at, a.transaction_id,
                    a.paid_at, a.booked_amount, a.revoke_tries, a.revoke_effect, s.local_date
             FROM attempts a JOIN sales s USING (till_id, order_no)
             WHERE a.till_id = $4
               AND ((a.paid_at IS NOT NULL AND left(a.paid_at, 10) BETWEEN $1 AND $2)
                    OR s.local_date = $3)",
            &[&before, &after, &date, &till],
        )
        .await?
    {
        let paid_at: Option<String> = r.get(12);
        let sale_day: NaiveDate = r.get(16);
        let on_day = match paid_at.as_deref() {
            Some(p) => paid_day(p).unwrap_or(sale_day) == date,
            None => sale_day == date,
        };
        if !on_day {
            continue;
        }
        let phase: String = r.get(8);
        let provider: String = r.get(4);
        let (Some(phase), Some(provider)) = (Phase::parse(&phase), Provider::parse(&provider))
        else {
            return Err(DbError::Other(format!(
                "attempt {}: unreadable phase or provider",
                r.get::<_, String>(1)
            )));
        };
        let effect: Option<String> = r.get(15);
        let row = AttemptRow {
            out_trade_no: r.get(1),
            order_no: r.get(2),
            seq: r.get::<_, i32>(3) as u32,
            provider,
            channel: r.get(5),
            amount: Fen(r.get::<_, i64>(6) as u64),
            code_masked: r.get(7),
            code_hash: Vec::new(),
            state: Attempt {
                phase,
                revoke_tries: r.get::<_, i32>(14) as u32,
                cancel_requested: false,
                seen_paid: false,
                used_number: false,
                background_revoke: false,
            },
            submitted_at: r
                .get::<_, chrono::DateTime<chrono::Utc>>(9)
                .timestamp_millis(),
            revoke_effect: match effect.as_deref() {
                Some("closed") => Some(RevokeEffect::Closed),
                Some("refunded") => Some(RevokeEffect::Refunded),
                Some("unstated") => Some(RevokeEffect::Unstated),
                _ => None,
            },
            transaction_id: r.get(11),
            paid_at: r.get(12),
            error: None,
            updated_at: r
                .get::<_, chrono::DateTime<chrono::Utc>>(10)
                .timestamp_millis(),
            booked: r.get::<_, Option<i64>>(13).map(|f| Fen(f as u64)),
            paid_by: PaidBy::default(),
        };
        attempts.push(row);
    }
    Ok(attempts)
}

/// One till's refunds made between `start` and `end`.
async fn refunds_of(
    client: &deadpool_postgres::Client,
    till: &str,
    start: chrono::DateTime<chrono::Local>,
    end: chrono::DateTime<chrono::Local>,
) -> Result<Vec<(Provider, RefundRow)>, DbError> {
    let mut refunds = Vec::new();
    for r in client
        .query(
            "SELECT f.till_id, f.refund_no, f.out_refund_no, f.order_no, f.out_trade_no, f.amount,
                    f.status, f.refund_id, f.created_at, a.provider
             FROM refunds f JOIN attempts a USING (till_id, out_trade_no)
             WHERE f.till_id = $3 AND f.created_at >= $1 AND f.created_at < $2",
            &[&start, &end, &till],
        )
        .await?
    {
        let status: String = r.get(6);
        let provider: String = r.get(9);
        let (Some(status), Some(provider)) =
            (RefundStatus::parse(&status), Provider::parse(&provider))
        else {
            return Err(DbError::Other(format!(
                "refund {}: unreadable status or provider",
                r.get::<_, String>(1)
            )));
        };
        let row = RefundRow {
            refund_no: r.get(1),
            out_refund_no: r.get(2),
            order_no: r.get(3),
            out_trade_no: r.get(4),
            amount: Fen(r.get::<_, i64>(5) as u64),
            reason: None,
            status,
            accepted: status != RefundStatus::Pending,
            refund_id: r.get(7),
            error: None,
            created_at: r
                .get::<_, chrono::DateTime<chrono::Utc>>(8)
                .timestamp_millis(),
            operator_id: None,
        };
        refunds.push((provider, row));
    }
    Ok(refunds)
}

/// The day's bill of each configured channel (or of the file given for
/// it), parsed once for every till, split by the provider each row is for.
pub async fn bills(
    channels: &[std::sync::Arc<dyn tillpay::gateway::channel::ChannelConfig>],
    date: &str,
    files: &[(String, std::path::PathBuf)],
) -> Result<Vec<(Provider, Bill)>, String> {
    use tillpay::gateway::bill::ALL_TILLS;
    use tillpay::gateway::BillAnswer;
    let mut out = Vec::new();
    for ch in tillpay::gateway::CHANNELS {
        let name = ch.name();
        let file = files.iter().find(|(n, _)| n == name).map(|(_, f)| f);
        let config = channels.iter().find(|c| c.name() == name);
        let bill = match (file, config) {
            (Some(path), _) => {
                let mut f =
                    std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                ch.parse_bill(&mut f, ALL_TILLS)
                    .map_err(|e| e.to_string())?
            }
            (None, Some(c)) => {
                let gw = c
                    .gateway("HQ", std::time::Duration::from_secs(60))
                    .map_err(|e| e.to_string())?;
                match gw.bill(date).await {
                    BillAnswer::File(bytes) => ch
                        .parse_bill(&mut std::io::Cursor::new(bytes), ALL_TILLS)
                        .map_err(|e| e.to_string())?,
                    BillAnswer::NoBill(_) => Bill::default(),
                    BillAnswer::NotYet(n) => {
                        return Err(format!(
                            "{name}: the bill for {date} is not ready yet ({}); bills are ready after 10:00 the next day",
                            n.message
                        ))
                    }
                    BillAnswer::Failed(n) => {
                        return Err(format!("{name}: cannot download the bill: {} {}", n.code, n.message))
                    }
                }
            }
            (None, None) => continue,
        };
        for p in ch.carries() {
            let rows: Vec<BillRow> = bill
                .rows
                .iter()
                .filter(|r| r.provider == *p)
                .cloned()
                .collect();
            out.push((
                *p,
                Bill {
                    total_rows: rows.len() as u64,
                    rows,
                    other_tills: 0,
                },
            ));
        }
    }
    Ok(out)
}

/// The report as an operator reads it.
pub fn table(r: &FleetReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fleet reconciliation of {}: {} matched",
        r.date, r.matched
    );
    for t in &r.tills {
        let _ = writeln!(
            out,
            "  till {} (store {}): {} matched, {} discrepancies",
            t.till_id,
            t.store_id,
            t.matched,
            t.discrepancies.len()
        );
        for d in &t.discrepancies {
            let _ = writeln!(
                out,
                "    {:?} {} {}: HQ has {}, the bill {} — {}",
                d.kind,
                d.provider.as_str(),
                d.out_trade_no,
                d.local.as_deref().unwrap_or("nothing"),
                d.remote.as_deref().unwrap_or("nothing"),
                tillpay::reconcile::report::advice(d.kind)
            );
        }
    }
    for u in &r.unknown_till_rows {
        let _ = writeln!(
            out,
            "  a till HQ does not know: {} {} {} {} fen ({}) on till {:?}: register the till (tillpay-hq till add) and let it sync, or look for it in the merchant portal",
            u.provider.as_str(),
            u.kind,
            u.out_trade_no,
            u.amount,
            u.transaction_id,
            u.till
        );
    }
    for n in &r.not_synced {
        let _ = writeln!(
            out,
            "  till {} (store {}) has not synced since before the day ended: its discrepancies may close once it does",
            n.till_id, n.store_id
        );
    }
    if r.clean() {
        out.push_str("no discrepancies\n");
    }
    out
}
