//! Helpers the journal's tests share.

use super::*;
use crate::gateway::PaidInfo;

pub fn journal() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(&dir.path().join("state/journal.sqlite"), "T1").expect("open");
    (dir, j)
}

pub fn code(s: &str) -> AuthCode {
    crate::gateway::recognise(s).expect("valid code")
}

/// Ends the attempt in `phase`; a paid one at `paid_at` if given.
pub fn finish_as(j: &Journal, row: &AttemptRow, phase: Phase, paid_at: Option<&str>) {
    let a = Attempt { phase, ..row.state };
    let mut rec = Record::new(phase.as_str());
    if phase == Phase::Paid {
        rec.paid = Some(PaidInfo {
            paid_by: Default::default(),
            transaction_id: "4200".into(),
            paid_at: paid_at.map(str::to_string),
            amount: None,
        });
    }
    j.record(&row.out_trade_no, &a, &rec).expect("record");
}
