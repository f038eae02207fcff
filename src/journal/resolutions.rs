//! Operators' verdicts on attempts that need attention: found, and
//! committed with who, when and why.

use rusqlite::{params, TransactionBehavior};

use super::{now_ms, rows, AttemptRow, Journal, JournalError, Result};
use crate::machine::{Attempt, Phase, Record};

impl Journal {
    /// The attempt of `order_no` that waits for an operator, if any.
    pub fn awaiting_operator(&self, order_no: &str) -> Result<Option<AttemptRow>> {
        let conn = self.lock();
        let mut stuck = rows::attempts_where(
            &conn,
            "order_no = ?1 AND phase = 'needs_attention' ORDER BY seq",
            [order_no],
        )?;
        Ok(stuck.pop())
    }

    /// Commits an operator's verdict, as the attempt machine stepped it,
    /// with who, when and why (docs/operations.md `journal resolve`).
    pub fn resolve(
        &self,
        row: &AttemptRow,
        next: &Attempt,
        rec: &Record,
        operator: &str,
        note: &str,
    ) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let phase: String = tx.query_row(
            "SELECT phase FROM attempts WHERE out_trade_no = ?1",
            [&row.out_trade_no],
            |r| r.get(0),
        )?;
        if phase != Phase::NeedsAttention.as_str() {
            return Err(JournalError::Refused(format!(
                "attempt {} is {phase}, not waiting for an operator",
                row.out_trade_no
            )));
        }
        let verdict = if next.phase == Phase::Paid {
            "paid"
        } else {
            "unpaid"
        };
        rows::update_attempt(&tx, &row.out_trade_no, next, rec)?;
        tx.execute(
            "INSERT INTO resolutions (out_trade_no, resolved_as, operator, note, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.out_trade_no, verdict, operator, note, now_ms()],
        )?;
        rows::event(
            &tx,
            &row.order_no,
            Some(&row.out_trade_no),
            rec.kind,
            &serde_json::json!({"as": verdict, "operator": operator, "note": note,
                "transaction_id": rec.paid.as_ref().map(|p| &p.transaction_id),
                "paid_at": rec.paid.as_ref().and_then(|p| p.paid_at.as_ref())}),
        )?;
        tx.commit()?;
        Ok(())
    }
}
