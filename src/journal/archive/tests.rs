//! Archiving over real journal files: only settled, reconciled, old sales
//! leave; they are read back from the month's compressed file; a crash
//! between writing the archive and deleting from the live journal loses
//! nothing and the next run finishes the move.

use super::super::tests_support::{code, finish_as, journal};
use super::*;
use crate::domain::Fen;
use crate::journal::RefundRow;
use crate::machine::refund::RefundStatus;
use crate::machine::Phase;

/// A sale of `order` on `date`, ended in `phase`.
fn sale_on(j: &Journal, order: &str, date: &str, c: &str, phase: Phase) {
    j.ensure_sale(order, Fen(100), "x", None).expect("sale");
    let row = j.begin_attempt(order, &code(c)).expect("attempt");
    finish_as(j, &row, phase, Some(&format!("{date}T12:00:00+08:00")));
    let conn = j.lock();
    conn.execute(
        "UPDATE sales SET local_date = ?2 WHERE order_no = ?1",
        params![order, date],
    )
    .expect("backdate");
}

#[test]
fn settled_reconciled_days_move_to_the_months_file_and_are_read_back() {
    let (dir, j) = journal();
    sale_on(&j, "OLD1", "2025-01-10", "134567890123456781", Phase::Paid);
    sale_on(
        &j,
        "OLD2",
        "2025-01-11",
        "134567890123456782",
        Phase::Revoked,
    );
    // Not reconciled: stays.
    sale_on(&j, "OLD3", "2025-01-12", "134567890123456783", Phase::Paid);
    // Needs an operator: stays, whatever the day.
    sale_on(
        &j,
        "OLD4",
        "2025-01-10",
        "134567890123456784",
        Phase::NeedsAttention,
    );
    // Within the refund window (after `before`): stays.
    sale_on(&j, "NEW1", "2025-01-30", "134567890123456785", Phase::Paid);
    for d in ["2025-01-10", "2025-01-11", "2025-01-30"] {
        j.mark_reconciled(d, 1).expect("mark");
    }
    let arch = dir.path().join("archive");
    let done = j
        .archive_month("2025-01", "2025-01-20", &arch)
        .expect("archive");
    assert_eq!(done.sales, 2);
    assert!(done.file.exists() && done.file.extension().is_some_and(|e| e == "gz"));
    for (order, live) in [
        ("OLD1", false),
        ("OLD2", false),
        ("OLD3", true),
        ("OLD4", true),
        ("NEW1", true),
    ] {
        assert_eq!(j.sale(order).expect("read").is_some(), live, "{order}");
    }
    assert!(
        j.events("OLD1").expect("events").is_empty(),
        "its history moved too"
    );
    // Read back with the same code as the live journal.
    let a = open(&done.file).expect("open archive");
    let (sale, attempts) = a.journal.sale("OLD1").expect("read").expect("archived");
    assert_eq!(
        (sale.amount, attempts[0].state.phase),
        (Fen(100), Phase::Paid)
    );
    assert!(!a.journal.events("OLD1").expect("events").is_empty());
    assert_eq!(a.journal.attempts_on("2025-01-10").expect("day").len(), 1);
    // A second run adds to the month's file, keeping what it had.
    j.mark_reconciled("2025-01-12", 1).expect("mark");
    let more = j
        .archive_month("2025-01", "2025-01-20", &arch)
        .expect("again");
    assert_eq!(more.sales, 1);
    let a = open(&more.file).expect("open archive");
    for order in ["OLD1", "OLD2", "OLD3"] {
        assert!(a.journal.sale(order).expect("read").is_some(), "{order}");
    }
    // The live history stays append-only after the move.
    assert!(j.lock().execute("DELETE FROM events", []).is_err());
}

#[test]
fn a_crash_after_the_archive_is_written_loses_nothing() {
    let (dir, j) = journal();
    sale_on(&j, "C1", "2025-02-03", "134567890123456781", Phase::Paid);
    j.mark_reconciled("2025-02-03", 1).expect("mark");
    let arch = dir.path().join("archive");
    // As if the run stopped after the file was in place: the sale is in
    // the archive and still live.
    let copy = {
        let done = j
            .archive_month("2025-02", "2025-03-01", &arch)
            .expect("archive");
        std::fs::read(&done.file).expect("read")
    };
    sale_on(&j, "C2", "2025-02-04", "134567890123456782", Phase::Paid);
    j.mark_reconciled("2025-02-04", 1).expect("mark");
    std::fs::write(file_of(&arch, "2025-02"), &copy).expect("restore");
    let done = j
        .archive_month("2025-02", "2025-03-01", &arch)
        .expect("rerun");
    assert_eq!(done.sales, 1);
    let a = open(&done.file).expect("open");
    assert!(a.journal.sale("C1").expect("read").is_some());
    assert!(a.journal.sale("C2").expect("read").is_some());
}

#[test]
fn one_run_at_a_time_per_archive_directory() {
    let (dir, j) = journal();
    sale_on(&j, "G1", "2025-03-03", "134567890123456781", Phase::Paid);
    j.mark_reconciled("2025-03-03", 1).expect("mark");
    let arch = dir.path().join("archive");
    // Another run holds the directory: this one is refused, nothing moves.
    std::fs::create_dir_all(&arch).expect("dir");
    let held = RunLock::take(&arch).expect("lock");
    assert!(matches!(
        j.archive_month("2025-03", "2025-04-01", &arch),
        Err(JournalError::Refused(_))
    ));
    drop(held);
    assert!(j.sale("G1").expect("read").is_some());
    let done = j
        .archive_month("2025-03", "2025-04-01", &arch)
        .expect("archive");
    assert_eq!(done.sales, 1);
}

#[test]
fn a_sale_whose_history_grows_during_the_run_stays_live_and_is_copied_afresh_later() {
    let (dir, j) = journal();
    sale_on(&j, "R1", "2025-04-02", "134567890123456781", Phase::Paid);
    sale_on(&j, "R2", "2025-04-02", "134567890123456782", Phase::Paid);
    j.mark_reconciled("2025-04-02", 2).expect("mark");
    let arch = dir.path().join("archive");
    let (_, attempts) = j.sale("R1").expect("read").expect("sale");
    let paid = attempts[0].clone();
    // The daemon refunds R1 between the copy and the delete.
    let refund = RefundRow {
        refund_no: "RF1".into(),
        out_refund_no: "T1RF1".into(),
        order_no: "R1".into(),
        out_trade_no: paid.out_trade_no.clone(),
        amount: Fen(40),
        reason: None,
        status: RefundStatus::Pending,
        accepted: false,
        refund_id: None,
        error: None,
        created_at: now_ms(),
        operator_id: None,
    };
    let done = j
        .archive_month_then("2025-04", "2025-05-01", &arch, &|| {
            j.begin_refund(&refund, paid.amount).expect("refund");
            // And a row the first copy holds changes with it.
            j.lock()
                .execute(
                    "UPDATE sales SET operator_id = 'bob' WHERE order_no = 'R1'",
                    [],
                )
                .expect("cashier");
        })
        .expect("archive");
    assert_eq!(done.sales, 1, "only R2 leaves");
    assert!(j.sale("R2").expect("read").is_none());
    assert!(
        j.sale("R1").expect("read").is_some(),
        "R1's history grew: it stays"
    );
    assert_eq!(j.refunds_of("R1").expect("refunds").len(), 1);
    // Its refund is confirmed; the next run moves R1, with the refund as
    // it is now (not the copy taken before it existed).
    {
        let conn = j.lock();
        conn.execute_batch(
            "UPDATE refunds SET status = 'refunded', accepted = 1 WHERE refund_no = 'RF1';
             INSERT INTO events (at, order_no, out_trade_no, kind, detail)
                 SELECT 1, order_no, out_trade_no, 'refunded', '{}' FROM refunds WHERE refund_no = 'RF1';",
        )
        .expect("confirm");
    }
    let again = j
        .archive_month("2025-04", "2025-05-01", &arch)
        .expect("again");
    assert_eq!(again.sales, 1);
    assert!(j.sale("R1").expect("read").is_none());
    let a = open(&again.file).expect("open");
    let (sale, _) = a.journal.sale("R1").expect("read").expect("archived");
    assert_eq!(
        sale.operator_id.as_deref(),
        Some("bob"),
        "the row as it left"
    );
    let refunds = a.journal.refunds_of("R1").expect("refunds");
    assert_eq!(
        refunds.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![RefundStatus::Refunded]
    );
    let kinds: Vec<String> = a
        .journal
        .events("R1")
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        ["paid", "refund_requested", "refunded"],
        "each event once"
    );
    assert!(a.journal.sale("R2").expect("read").is_some());
}

#[test]
fn a_till_that_syncs_to_hq_archives_only_what_hq_has() {
    let (dir, j) = journal();
    sale_on(&j, "H1", "2025-05-02", "134567890123456781", Phase::Paid);
    sale_on(&j, "H2", "2025-05-02", "134567890123456782", Phase::Paid);
    j.mark_reconciled("2025-05-02", 2).expect("mark");
    let last = |order: &str| j.events(order).expect("events").len();
    assert!(last("H1") > 0 && last("H2") > 0);
    // HQ has acknowledged H1's history but not H2's.
    let h1_last: i64 = j
        .lock()
        .query_row(
            "SELECT MAX(id) FROM events WHERE order_no = 'H1'",
            [],
            |r| r.get(0),
        )
        .expect("h1");
    j.set_hq_high_water(h1_last).expect("mark");
    let arch = dir.path().join("archive");
    let done = j
        .archive_month("2025-05", "2025-06-01", &arch)
        .expect("archive");
    assert_eq!(done.sales, 1);
    assert!(j.sale("H1").expect("read").is_none());
    assert!(
        j.sale("H2").expect("read").is_some(),
        "not at HQ yet: stays"
    );
    // The sync knows how far the archive took history, should HQ ever ask
    // for events from before it again.
    let (_, archived) = j.sync_bounds().expect("bounds");
    assert_eq!(archived, h1_last);
    // A till set up for HQ that never synced archives nothing.
    let (dir2, fresh) = journal();
    sale_on(
        &fresh,
        "N1",
        "2025-05-02",
        "134567890123456783",
        Phase::Paid,
    );
    fresh.mark_reconciled("2025-05-02", 1).expect("mark");
    fresh.set_hq_high_water(0).expect("mark");
    let none = fresh
        .archive_month("2025-05", "2025-06-01", &dir2.path().join("archive"))
        .expect("archive");
    assert_eq!(none.sales, 0);
}
