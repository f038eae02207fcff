//! The cashier's shifts: one is open at a time; closing it keeps its
//! report and opens the next at the same instant, in one transaction, so
//! every sale falls in exactly one shift.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{now_ms, rows, AttemptRow, Journal, JournalError, RefundRow, Result, SaleRow};
use crate::domain::Provider;

/// One shift as the journal has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftRow {
    pub shift_no: i64,
    /// Wall-clock ms.
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    /// The report kept when it closed (JSON).
    pub report: Option<String>,
    /// What the shift before handed on: it counts them once they end.
    pub carried: Carried,
}

/// A closing shift's sales still in flight and refunds not yet confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Carried {
    pub sales: Vec<String>,
    pub refunds: Vec<String>,
}

/// What a shift's report is made of: the sales rung up in it (with their
/// attempts) and the refunds asked for in it (with their payment's provider).
pub struct ShiftRows {
    pub sales: Vec<(SaleRow, Vec<AttemptRow>)>,
    pub refunds: Vec<(Provider, RefundRow)>,
}

fn shift_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ShiftRow> {
    let carried: Option<String> = r.get(4)?;
    Ok(ShiftRow {
        shift_no: r.get(0)?,
        opened_at: r.get(1)?,
        closed_at: r.get(2)?,
        report: r.get(3)?,
        carried: carried
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default(),
    })
}

const SHIFT_COLS: &str = "shift_no, opened_at, closed_at, report, carried";

impl Journal {
    /// The open shift; the first one opens with the journal's first sale
    /// (or now, on a journal without sales).
    pub fn open_shift(&self) -> Result<ShiftRow> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let open = tx
            .query_row(
                &format!("SELECT {SHIFT_COLS} FROM shifts WHERE closed_at IS NULL"),
                [],
                shift_row,
            )
            .optional()?;
        if let Some(s) = open {
            return Ok(s);
        }
        let last_close: Option<i64> =
            tx.query_row("SELECT MAX(closed_at) FROM shifts", [], |r| r.get(0))?;
        let first_sale: Option<i64> =
            tx.query_row("SELECT MIN(created_at) FROM sales", [], |r| r.get(0))?;
        let opened_at = last_close.or(first_sale).unwrap_or_else(now_ms);
        tx.execute("INSERT INTO shifts (opened_at) VALUES (?1)", [opened_at])?;
        let row = ShiftRow {
            shift_no: tx.last_insert_rowid(),
            opened_at,
            closed_at: None,
            report: None,
            carried: Carried::default(),
        };
        tx.commit()?;
        Ok(row)
    }

    pub fn shift(&self, shift_no: i64) -> Result<Option<ShiftRow>> {
        let conn = self.lock();
        Ok(conn
            .query_row(
                &format!("SELECT {SHIFT_COLS} FROM shifts WHERE shift_no = ?1"),
                [shift_no],
                shift_row,
            )
            .optional()?)
    }

    /// The sales rung up and the refunds asked for in `[from, to)` ms,
    /// with those the shift before handed on.
    pub fn shift_rows(&self, from: i64, to: i64, carried: &Carried) -> Result<ShiftRows> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT order_no, amount, subject, local_date, created_at, cancelled, cancel_reason,
             operator_id FROM sales WHERE created_at >= ?1 AND created_at < ?2 ORDER BY created_at",
        )?;
        let mut sales: Vec<SaleRow> = stmt
            .query_map(params![from, to], rows::sale_row)?
            .collect::<rusqlite::Result<_>>()?;
        for order in &carried.sales {
            if sales.iter().all(|s| &s.order_no != order) {
                sales.extend(rows::sale(&conn, order)?);
            }
        }
        let mut out = Vec::with_capacity(sales.len());
        for s in sales {
            let attempts =
                rows::attempts_where(&conn, "order_no = ?1 ORDER BY seq", [&s.order_no])?;
            out.push((s, attempts));
        }
        let mut refunds = rows::refunds_where(
            &conn,
            "created_at >= ?1 AND created_at < ?2 ORDER BY created_at",
            params![from, to],
        )?;
        for no in &carried.refunds {
            if refunds.iter().all(|r| &r.refund_no != no) {
                refunds.extend(rows::refunds_where(&conn, "refund_no = ?1", [no])?);
            }
        }
        let refunds = super::refunds::with_providers(&conn, refunds)?;
        Ok(ShiftRows {
            sales: out,
            refunds,
        })
    }

    /// Closes the open shift `shift_no` at `closed_at` with its report and
    /// opens the next one at that instant. Refused if `shift_no` is no
    /// longer the open one (someone closed it meanwhile).
    pub fn close_shift(
        &self,
        shift_no: i64,
        closed_at: i64,
        report: &str,
        carried: Carried,
    ) -> Result<ShiftRow> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE shifts SET closed_at = ?2, report = ?3 WHERE shift_no = ?1 AND closed_at IS NULL",
            params![shift_no, closed_at, report],
        )?;
        if changed != 1 {
            return Err(JournalError::Refused(format!(
                "shift {shift_no} is already closed"
            )));
        }
        let text = serde_json::to_string(&carried)
            .map_err(|e| JournalError::Internal(format!("carried: {e}")))?;
        tx.execute(
            "INSERT INTO shifts (opened_at, carried) VALUES (?1, ?2)",
            params![closed_at, text],
        )?;
        let next = ShiftRow {
            shift_no: tx.last_insert_rowid(),
            opened_at: closed_at,
            closed_at: None,
            report: None,
            carried,
        };
        tx.commit()?;
        Ok(next)
    }
}
