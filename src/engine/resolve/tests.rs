//! Operators' verdicts applied to a real journal, as `tillpay journal
//! resolve` does with no daemon running.

use super::*;
use crate::domain::{AuthCode, Fen};
use crate::machine::Record;

fn journal() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(&dir.path().join("journal.sqlite"), "T1").expect("open");
    (dir, j)
}

fn code(s: &str) -> AuthCode {
    crate::gateway::recognise(s).expect("valid code")
}

fn finish(j: &Journal, row: &AttemptRow, phase: Phase) {
    let a = Attempt { phase, ..row.state };
    j.record(&row.out_trade_no, &a, &Record::new(phase.as_str()))
        .expect("record");
}

fn verdict(as_paid: bool, txid: Option<&str>, operator: &str, note: &str) -> ResolveRequest {
    ResolveRequest {
        order_no: "A1".into(),
        as_paid,
        transaction_id: txid.map(str::to_string),
        paid_at: None,
        operator: operator.into(),
        note: note.into(),
    }
}

#[test]
fn resolve_records_who_and_why() {
    let (_d, j) = journal();
    j.ensure_sale("A1", Fen(100), "x", None).expect("sale");
    let row = j
        .begin_attempt("A1", &code("134567890123456789"))
        .expect("attempt");
    assert!(
        offline(&j, &verdict(false, None, "ops", "checked")).is_err(),
        "only stuck attempts"
    );
    finish(&j, &row, Phase::NeedsAttention);
    assert_eq!(j.attention().expect("attention").len(), 1);
    offline(
        &j,
        &verdict(false, None, "alice", "merchant portal shows closed"),
    )
    .expect("resolve");
    assert!(j.attention().expect("attention").is_empty());
    let (_, attempts) = j.sale("A1").expect("read").expect("sale");
    assert_eq!(attempts[0].state.phase, Phase::Failed);
    let events = j.events("A1").expect("events");
    let last = events.last().expect("event");
    assert_eq!(last.kind, "operator_resolved");
    assert!(last.detail.contains("alice") && last.detail.contains("merchant portal"));
}

#[test]
fn resolving_as_paid_names_the_payment() {
    let (_d, j) = journal();
    j.ensure_sale("A1", Fen(100), "x", None).expect("sale");
    let row = j
        .begin_attempt("A1", &code("134567890123456789"))
        .expect("attempt");
    finish(&j, &row, Phase::NeedsAttention);
    // The gateway never named it: the operator must, from the portal.
    let e =
        offline(&j, &verdict(true, None, "ops", "portal shows paid")).expect_err("needs the id");
    assert!(e.to_string().contains("--transaction-id"), "{e}");
    assert!(offline(&j, &verdict(false, Some("4200123"), "ops", "x")).is_err());
    // ... and when it was paid: the sale belongs to that day, not today.
    let e = offline(
        &j,
        &verdict(true, Some("4200123"), "ops", "portal shows paid"),
    )
    .expect_err("needs the time");
    assert!(e.to_string().contains("--paid-at"), "{e}");
    let paid = ResolveRequest {
        paid_at: Some("2026-11-20 09:30:00".into()),
        ..verdict(true, Some("4200123"), "ops", "portal shows paid")
    };
    offline(&j, &paid).expect("resolve");
    let (_, attempts) = j.sale("A1").expect("read").expect("sale");
    assert_eq!(attempts[0].state.phase, Phase::Paid);
    assert_eq!(attempts[0].transaction_id.as_deref(), Some("4200123"));
    let paid_at = attempts[0].paid_at.as_deref().expect("paid_at");
    assert!(paid_at.starts_with("2026-11-20T09:30:00"), "{paid_at}");
    assert_eq!(
        j.attempts_on("2026-11-20").expect("day").len(),
        1,
        "reconciled on the day it was paid"
    );
}
