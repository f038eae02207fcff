//! The journal's refunds: journaled before they are sent, each step of the
//! refund machine committed, found again by day, order and number.

use rusqlite::{params, TransactionBehavior};

use super::{conflict, now_ms, rows, Journal, JournalError, RefundRow, Result};
use crate::domain::{Fen, Provider};
use crate::gateway::GatewayNote;
use crate::machine::refund::Refund;

impl Journal {
    /// The refunds asked for on one local day, with their payment's
    /// provider: a refund is in the bill of the day it was made, whatever
    /// the day of the sale (reconciliation).
    pub fn refunds_on(&self, date: &str) -> Result<Vec<(Provider, RefundRow)>> {
        let conn = self.lock();
        let refunds = rows::refunds_where(
            &conn,
            "date(created_at / 1000, 'unixepoch', 'localtime') = ?1 ORDER BY created_at",
            [date],
        )?;
        with_providers(&conn, refunds)
    }

    pub fn refunds_of(&self, order_no: &str) -> Result<Vec<RefundRow>> {
        let conn = self.lock();
        Ok(rows::refunds_where(
            &conn,
            "order_no = ?1 ORDER BY created_at",
            [order_no],
        )?)
    }

    pub fn refund(&self, refund_no: &str) -> Result<Option<RefundRow>> {
        let conn = self.lock();
        Ok(rows::refunds_where(&conn, "refund_no = ?1", [refund_no])?.pop())
    }

    /// Commits a refund request before it is sent (payment-rules.md §17): refused when
    /// it would take back more than was paid minus what was refunded.
    pub fn begin_refund(&self, row: &RefundRow, paid: Fen) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let taken: i64 = tx.query_row(
            "SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE out_trade_no = ?1 AND status != 'failed'",
            [&row.out_trade_no],
            |r| r.get(0),
        )?;
        let total = (taken as u64).checked_add(row.amount.0);
        if total.is_none_or(|t| t > paid.0) || row.amount.0 > i64::MAX as u64 {
            return Err(JournalError::Refused(format!(
                "refund of {} fen exceeds what is left ({} fen)",
                row.amount.0,
                paid.0.saturating_sub(taken as u64)
            )));
        }
        rows::insert_refund(&tx, row).map_err(conflict)?;
        rows::event(
            &tx,
            &row.order_no,
            Some(&row.out_trade_no),
            "refund_requested",
            &serde_json::json!({"refund_no": row.refund_no, "amount": row.amount.0,
                "operator_id": row.operator_id}),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Commits one step of the refund machine.
    pub fn record_refund(
        &self,
        refund_no: &str,
        r: &Refund,
        kind: &str,
        note: Option<&GatewayNote>,
        refund_id: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE refunds SET status = ?2, accepted = ?3, refund_id = COALESCE(?4, refund_id),
             error_code = COALESCE(?5, error_code), error_message = COALESCE(?6, error_message),
             updated_at = ?7 WHERE refund_no = ?1",
            params![
                refund_no,
                r.status.as_str(),
                r.accepted as i64,
                refund_id,
                note.map(|e| e.code.as_str()),
                note.map(|e| e.message.as_str()),
                now_ms()
            ],
        )?;
        if changed != 1 {
            return Err(JournalError::Sqlite(rusqlite::Error::QueryReturnedNoRows));
        }
        let (order_no, out_trade_no): (String, String) = tx.query_row(
            "SELECT order_no, out_trade_no FROM refunds WHERE refund_no = ?1",
            [refund_no],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        rows::event(
            &tx,
            &order_no,
            Some(&out_trade_no),
            kind,
            &serde_json::json!({"refund_no": refund_no, "status": r.status.as_str(), "note": note,
                "refund_id": refund_id}),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every refund the gateway has not settled (for recovery, payment-rules.md §17).
    pub fn unsettled_refunds(&self) -> Result<Vec<RefundRow>> {
        let conn = self.lock();
        Ok(rows::refunds_where(
            &conn,
            "status IN ('pending', 'processing') ORDER BY created_at",
            [],
        )?)
    }
}

/// Each refund with its payment's provider.
pub(super) fn with_providers(
    conn: &rusqlite::Connection,
    refunds: Vec<RefundRow>,
) -> Result<Vec<(Provider, RefundRow)>> {
    let mut out = Vec::with_capacity(refunds.len());
    for f in refunds {
        let provider: String = conn.query_row(
            "SELECT provider FROM attempts WHERE out_trade_no = ?1",
            [&f.out_trade_no],
            |r| r.get(0),
        )?;
        let provider = Provider::parse(&provider).ok_or_else(|| {
            JournalError::Corrupt(format!(
                "attempt {}: unknown provider {provider:?}",
                f.out_trade_no
            ))
        })?;
        out.push((provider, f));
    }
    Ok(out)
}
