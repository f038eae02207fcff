//! What the journal is asked, besides one sale: the attempts in flight
//! (recovery), those an operator must see, a day's sales, an order's
//! history, and the attempts a day's bills account for.

use super::{rows, AttemptRow, EventRow, Journal, Result, SaleRow};

/// Attempts not final, and those an operator must see but a background
/// revoke still works on. Each names the phases of the partial index
/// `attempts_live` first, so SQLite reads only that index.
pub(super) const UNFINISHED: &str =
    "phase IN ('submitting', 'paying', 'revoking', 'needs_attention') \
     AND (phase != 'needs_attention' OR background_revoke = 1)";
pub(super) const ATTENTION: &str =
    "phase IN ('submitting', 'paying', 'revoking', 'needs_attention') AND phase = 'needs_attention'";

impl Journal {
    /// Every attempt that is not final, and every one that needs an
    /// operator but is still revoking in the background (for recovery,
    /// payment-rules.md §12, 15).
    pub fn unfinished(&self) -> Result<Vec<AttemptRow>> {
        let conn = self.lock();
        rows::attempts_where(&conn, &format!("{UNFINISHED} ORDER BY submitted_at"), [])
            .map_err(Into::into)
    }

    pub fn attention(&self) -> Result<Vec<AttemptRow>> {
        let conn = self.lock();
        Ok(rows::attempts_where(
            &conn,
            &format!("{ATTENTION} ORDER BY submitted_at"),
            [],
        )?)
    }

    /// The sales of one local day (`YYYY-MM-DD`), each with its attempts.
    pub fn day(&self, date: &str) -> Result<Vec<(SaleRow, Vec<AttemptRow>)>> {
        let conn = self.lock();
        let sales = rows::sales_on(&conn, date)?;
        let mut out = Vec::with_capacity(sales.len());
        for s in sales {
            let attempts =
                rows::attempts_where(&conn, "order_no = ?1 ORDER BY seq", [&s.order_no])?;
            out.push((s, attempts));
        }
        Ok(out)
    }

    pub fn events(&self, order_no: &str) -> Result<Vec<EventRow>> {
        let conn = self.lock();
        Ok(rows::events_of(&conn, order_no)?)
    }

    /// The attempts that one day's bills account for (reconciliation).
    ///
    /// An attempt the gateway booked belongs to the day of its `paid_at`,
    /// which is the gateway's own time, read in the till's local time. For a
    /// till in China that is Beijing time, the bills' day. That is the bill
    /// its payment row is in. A sale rung up at 23:59:58 and paid at 00:00:03
    /// is in the next day's bill, so it belongs to the next day's
    /// reconciliation. An attempt nothing was booked for goes by its sale's
    /// local date.
    pub fn attempts_on(&self, date: &str) -> Result<Vec<AttemptRow>> {
        let conn = self.lock();
        rows::attempts_where(
            &conn,
            "(paid_at IS NOT NULL AND date(paid_at, 'localtime') = ?1)
             OR (paid_at IS NULL AND order_no IN (SELECT order_no FROM sales WHERE local_date = ?1))
             ORDER BY submitted_at",
            [date],
        )
        .map_err(Into::into)
    }
}
