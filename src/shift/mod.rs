//! The cashier's shift and its Z-report: what a shift took, per provider
//! and per cashier, what went back, what was revoked, and what an operator
//! still has to look at. A report is read from the journal alone (the
//! gateways are asked nothing); closing a shift keeps its report in the
//! journal and opens the next one.

mod report;

pub use report::{build, ShiftReport, Split, Tally};

use crate::journal::{now_ms, Carried, Journal, JournalError, RefundStatus, ShiftRow};

/// The running shift's report, as of now.
pub fn running(journal: &Journal) -> Result<ShiftReport, JournalError> {
    let open = journal.open_shift()?;
    // Up to and including this millisecond.
    let rows = journal.shift_rows(open.opened_at, now_ms() + 1, &open.carried)?;
    Ok(build(journal.till_id(), &open, None, &rows))
}

/// Closes the running shift: its report, kept in the journal, and the
/// number of the shift that opened.
pub fn close(journal: &Journal) -> Result<(ShiftReport, ShiftRow), JournalError> {
    let open = journal.open_shift()?;
    let at = now_ms();
    let rows = journal.shift_rows(open.opened_at, at, &open.carried)?;
    let report = build(journal.till_id(), &open, Some(at), &rows);
    let text = serde_json::to_string(&report)
        .map_err(|e| JournalError::Internal(format!("shift report: {e}")))?;
    // Sales still in flight and refunds not yet confirmed are the next
    // shift's to count, once they end.
    let carried = Carried {
        sales: report.in_flight_orders.clone(),
        refunds: rows
            .refunds
            .iter()
            .filter(|(_, f)| matches!(f.status, RefundStatus::Pending | RefundStatus::Processing))
            .map(|(_, f)| f.refund_no.clone())
            .collect(),
    };
    let next = journal.close_shift(open.shift_no, at, &text, carried)?;
    Ok((report, next))
}

/// The report of shift `shift_no`: the one kept when it closed, or the
/// running one's as of now.
pub fn of(journal: &Journal, shift_no: i64) -> Result<Option<ShiftReport>, JournalError> {
    let Some(row) = journal.shift(shift_no)? else {
        return Ok(None);
    };
    match (&row.report, row.closed_at) {
        (Some(text), Some(_)) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| JournalError::Corrupt(format!("shift {shift_no}'s report: {e}"))),
        _ => running(journal).map(Some),
    }
}
