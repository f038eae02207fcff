//! `tillpay journal archive` on a journal with history older than the
//! refund window: the days reconciled clean leave the live journal for
//! their month's compressed file, `journal show` still finds their sales,
//! and a day not reconciled stays.

use tillpay::domain::Fen;
use tillpay::gateway::PaidInfo;
use tillpay::journal::Journal;
use tillpay::machine::{Attempt, Phase, Record};

fn paid_sale(j: &Journal, order: &str, code: &str, date: &str) {
    j.ensure_sale(order, Fen(880), "tea", Some("alice"))
        .expect("sale");
    let row = j
        .begin_attempt(order, &tillpay::gateway::recognise(code).expect("code"))
        .expect("attempt");
    let rec = Record {
        paid: Some(PaidInfo {
            paid_by: Default::default(),
            transaction_id: format!("4200{order}"),
            paid_at: Some(format!("{date}T09:30:00+08:00")),
            amount: Some(Fen(880)),
        }),
        ..Record::new("paid")
    };
    let done = Attempt {
        phase: Phase::Paid,
        ..row.state
    };
    j.record(&row.out_trade_no, &done, &rec).expect("paid");
}

fn tillpay(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tillpay"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn reconciled_old_days_are_archived_and_still_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite");
    {
        let j = Journal::open(&path, "T1").expect("journal");
        paid_sale(&j, "A1", "134567890123456781", "2024-03-05");
        paid_sale(&j, "A2", "134567890123456782", "2024-03-06");
        // Backdated as a till two years old would have them.
        let conn = rusqlite::Connection::open(&path).expect("raw");
        conn.execute_batch(
            "UPDATE sales SET local_date = '2024-03-05' WHERE order_no = 'A1';
             UPDATE sales SET local_date = '2024-03-06' WHERE order_no = 'A2';",
        )
        .expect("backdate");
        j.mark_reconciled("2024-03-05", 1).expect("mark");
    }
    let state = dir.path().display().to_string();
    let (code, out) = tillpay(&["journal", "--state-dir", &state, "archive"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2024-03: 1 sale(s) moved"), "{out}");
    let file = dir.path().join("archive/2024-03.sqlite.gz");
    let gz = std::fs::read(&file).expect("the month's file");
    assert!(gz.starts_with(&[0x1f, 0x8b]), "gzip");
    let j = Journal::open(&path, "T1").expect("journal");
    assert!(
        j.sale("A1").expect("read").is_none(),
        "A1 left the live journal"
    );
    assert!(
        j.sale("A2").expect("read").is_some(),
        "A2's day was not reconciled"
    );
    drop(j);
    let (code, out) = tillpay(&["journal", "--state-dir", &state, "show", "A1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("archived in") && out.contains("order A1 ¥8.80"),
        "{out}"
    );
    assert!(
        out.contains("by cashier alice") && out.contains("phase paid"),
        "{out}"
    );
    let (code, out) = tillpay(&["journal", "--state-dir", &state, "show", "NOPE"]);
    assert_ne!(code, Some(0));
    assert!(
        out.contains("no order NOPE in the journal or its archives"),
        "{out}"
    );
    // Too short a window is refused: refunds need their sale.
    let (code, out) = tillpay(&[
        "journal",
        "--state-dir",
        &state,
        "archive",
        "--keep-days",
        "7",
    ]);
    assert_ne!(code, Some(0));
    assert!(out.contains("at least 90"), "{out}");
}
