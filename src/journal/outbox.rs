//! The journal as HQ's outbox: its append-only events, read in id order
//! after the high-water mark HQ last acknowledged, each batch with the
//! rows of the orders it touches. Read on a connection of its own, so a
//! batch never holds up a sale's journal write.

use std::collections::BTreeSet;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::rows::{self, AttemptRow, RefundRow, SaleRow};
use super::{Journal, Result};
use crate::sync::wire;

const HIGH_WATER: &str = "hq_high_water";
const SHIFT_MARK: &str = "hq_shift_mark";

impl Journal {
    fn meta_i64(&self, key: &str) -> Result<Option<i64>> {
        let conn = self.lock();
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta_i64(&self, key: &str, value: i64) -> Result<()> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = ?2",
            rusqlite::params![key, value],
        )?;
        Ok(())
    }

    /// The high-water mark HQ last acknowledged; `None` if this till has
    /// never synced.
    pub fn hq_high_water(&self) -> Result<Option<i64>> {
        self.meta_i64(HIGH_WATER)
    }

    /// Records HQ's acknowledgement: events up to `high_water` are kept
    /// at HQ. It may go down (an HQ restored from a backup asks for more).
    pub fn set_hq_high_water(&self, high_water: i64) -> Result<()> {
        self.set_meta_i64(HIGH_WATER, high_water)
    }

    /// The newest shift HQ has taken (0: none).
    pub fn hq_shift_mark(&self) -> Result<i64> {
        Ok(self.meta_i64(SHIFT_MARK)?.unwrap_or(0))
    }

    pub fn set_hq_shift_mark(&self, shift_no: i64) -> Result<()> {
        self.set_meta_i64(SHIFT_MARK, shift_no)
    }

    /// Up to `limit` closed shifts after `after`, oldest first, with their
    /// reports.
    pub fn closed_shifts_after(&self, after: i64, limit: usize) -> Result<Vec<wire::ShiftReport>> {
        let conn = self.lock();
        let mut s = conn.prepare(
            "SELECT shift_no, opened_at, closed_at, report FROM shifts
             WHERE shift_no > ?1 AND closed_at IS NOT NULL ORDER BY shift_no LIMIT ?2",
        )?;
        let rows = s.query_map(rusqlite::params![after, limit as i64], |r| {
            let report: Option<String> = r.get(3)?;
            Ok(wire::ShiftReport {
                shift_no: r.get(0)?,
                opened_at: r.get(1)?,
                closed_at: r.get(2)?,
                report: report
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(serde_json::Value::Null),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The newest event id this journal ever had (archived ones count),
    /// and the newest one archived out of it (0 if none).
    pub fn sync_bounds(&self) -> Result<(i64, i64)> {
        let conn = self.lock();
        let newest: i64 = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let archived: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'archived_event_max'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        Ok((newest, archived))
    }

    /// Results of HQ's commands this till carried out, kept until HQ has
    /// them (and a while after, so a command delivered again is answered
    /// from here, not carried out twice).
    pub fn hq_results(&self) -> Result<Vec<(wire::Done, bool)>> {
        let conn = self.lock();
        let text: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'hq_results'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    pub fn set_hq_results(&self, results: &[(wire::Done, bool)]) -> Result<()> {
        let text = serde_json::to_string(results)
            .map_err(|e| super::JournalError::Internal(e.to_string()))?;
        let conn = self.lock();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('hq_results', ?1)
             ON CONFLICT (key) DO UPDATE SET value = ?1",
            [text],
        )?;
        Ok(())
    }

    /// The next batch for HQ: up to `limit` events after `after`, and the
    /// rows of their orders, read in one snapshot.
    pub fn outbox(&self, after: i64, limit: usize) -> Result<wire::Batch> {
        let mut conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let tx = conn.transaction()?;
        let events = {
            let mut s = tx.prepare(
                "SELECT id, at, order_no, out_trade_no, kind, detail FROM events
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = s.query_map(rusqlite::params![after, limit as i64], |r| {
                let detail: String = r.get(5)?;
                Ok(wire::Event {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    order_no: r.get(2)?,
                    out_trade_no: r.get(3)?,
                    kind: r.get(4)?,
                    detail: serde_json::from_str(&detail)
                        .unwrap_or(serde_json::Value::String(detail)),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        let orders: BTreeSet<&str> = events.iter().map(|e| e.order_no.as_str()).collect();
        let mut snapshots = Vec::with_capacity(orders.len());
        for order_no in orders {
            let Some(sale) = rows::sale(&tx, order_no)? else {
                continue;
            };
            let version: i64 = tx.query_row(
                "SELECT MAX(id) FROM events WHERE order_no = ?1",
                [order_no],
                |r| r.get(0),
            )?;
            let attempts = rows::attempts_where(&tx, "order_no = ?1 ORDER BY seq", [order_no])?;
            let refunds =
                rows::refunds_where(&tx, "order_no = ?1 ORDER BY created_at", [order_no])?;
            snapshots.push(wire::OrderSnapshot {
                order_no: order_no.to_string(),
                version,
                sale: sale_of(sale),
                attempts: attempts.into_iter().map(attempt_of).collect(),
                refunds: refunds.into_iter().map(refund_of).collect(),
            });
        }
        Ok(wire::Batch {
            till_id: self.till_id.clone(),
            after,
            events,
            orders: snapshots,
            done: Vec::new(),
            shifts: Vec::new(),
        })
    }
}

fn sale_of(s: SaleRow) -> wire::Sale {
    wire::Sale {
        amount: s.amount.0,
        subject: s.subject,
        local_date: s.local_date,
        created_at: s.created_at,
        cancelled: s.cancelled,
        cancel_reason: s.cancel_reason,
        operator_id: s.operator_id,
    }
}

fn attempt_of(a: AttemptRow) -> wire::Attempt {
    let (error_code, error_message) = match a.error {
        Some(n) => (Some(n.code), Some(n.message)),
        None => (None, None),
    };
    wire::Attempt {
        out_trade_no: a.out_trade_no,
        seq: a.seq,
        provider: a.provider.as_str().to_string(),
        channel: a.channel,
        amount: a.amount.0,
        code_masked: a.code_masked,
        phase: a.state.phase.as_str().to_string(),
        submitted_at: a.submitted_at,
        updated_at: a.updated_at,
        transaction_id: a.transaction_id,
        paid_at: a.paid_at,
        booked_amount: a.booked.map(|f| f.0),
        customer_paid: a.paid_by.customer_paid.map(|f| f.0),
        discount: a.paid_by.discount.map(|f| f.0),
        payer: a.paid_by.payer,
        error_code,
        error_message,
        revoke_tries: a.state.revoke_tries,
        revoke_effect: a.revoke_effect.map(|e| rows::effect_str(e).to_string()),
    }
}

fn refund_of(r: RefundRow) -> wire::Refund {
    let (error_code, error_message) = match r.error {
        Some(n) => (Some(n.code), Some(n.message)),
        None => (None, None),
    };
    wire::Refund {
        refund_no: r.refund_no,
        out_refund_no: r.out_refund_no,
        out_trade_no: r.out_trade_no,
        amount: r.amount.0,
        status: r.status.as_str().to_string(),
        refund_id: r.refund_id,
        reason: r.reason,
        operator_id: r.operator_id,
        error_code,
        error_message,
        created_at: r.created_at,
    }
}
