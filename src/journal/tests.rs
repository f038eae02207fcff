use super::*;
use crate::domain::Provider;
use crate::gateway::PaidInfo;

use super::tests_support::{code, journal};

fn finish(j: &Journal, row: &AttemptRow, phase: Phase) {
    super::tests_support::finish_as(j, row, phase, None);
}

#[test]
fn durability_pragmas_are_what_policy_14_asks() {
    let (_d, j) = journal();
    assert_eq!(j.pragma("journal_mode").expect("pragma"), "wal");
    assert_eq!(j.pragma("synchronous").expect("pragma"), "2", "2 = FULL");
    assert_eq!(j.pragma("foreign_keys").expect("pragma"), "1");
    assert_eq!(
        j.pragma("user_version").expect("pragma"),
        schema::VERSION.to_string()
    );
}

#[test]
fn reopening_keeps_data_and_the_code_hash_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite");
    let c = code("134567890123456789");
    let h1 = {
        let j = Journal::open(&path, "T1").expect("open");
        j.ensure_sale("A1", Fen(100), "x", None).expect("sale");
        j.code_hash(&c)
    };
    let j = Journal::open(&path, "T1").expect("reopen");
    assert_eq!(
        j.code_hash(&c),
        h1,
        "a rescan is recognised across restarts"
    );
    assert!(j.sale("A1").expect("read").is_some());
}

#[test]
fn attempts_follow_policy_1_and_2() {
    let (_d, j) = journal();
    j.ensure_sale("A1", Fen(100), "x", None).expect("sale");
    assert!(matches!(
        j.ensure_sale("A1", Fen(101), "x", None),
        Err(JournalError::Refused(_))
    ));
    let first = j
        .begin_attempt("A1", &code("134567890123456789"))
        .expect("attempt");
    assert_eq!(first.out_trade_no, "T1_A1_1");
    assert_eq!(first.code_masked, "1345**********6789");
    // In flight: a second code for the sale is refused.
    let e = j.begin_attempt("A1", &code("284567890123456789"));
    assert!(matches!(e, Err(JournalError::Refused(_))), "{e:?}");
    finish(&j, &first, Phase::Failed);
    let second = j
        .begin_attempt("A1", &code("284567890123456789"))
        .expect("new attempt");
    assert_eq!(
        second.out_trade_no, "T1_A1_2",
        "a new attempt gets a new out_trade_no"
    );
    finish(&j, &second, Phase::Paid);
    let e = j.begin_attempt("A1", &code("104567890123456789"));
    assert!(
        matches!(e, Err(JournalError::Refused(_))),
        "a paid sale is never charged again"
    );
    let (_, attempts) = j.sale("A1").expect("read").expect("sale");
    assert_eq!(attempts[1].transaction_id.as_deref(), Some("4200"));
}

#[test]
fn the_event_history_is_append_only() {
    let (_d, j) = journal();
    j.ensure_sale("A1", Fen(100), "x", None).expect("sale");
    let row = j
        .begin_attempt("A1", &code("134567890123456789"))
        .expect("attempt");
    finish(&j, &row, Phase::Paid);
    let conn = j.lock();
    assert!(conn.execute("UPDATE events SET kind = 'x'", []).is_err());
    assert!(conn.execute("DELETE FROM events", []).is_err());
}

#[test]
fn refunds_never_exceed_what_was_paid() {
    let (_d, j) = journal();
    j.ensure_sale("A1", Fen(100), "x", None).expect("sale");
    let row = j
        .begin_attempt("A1", &code("134567890123456789"))
        .expect("attempt");
    let refund = |no: &str, amount: u64| RefundRow {
        operator_id: None,
        refund_no: no.into(),
        out_refund_no: crate::domain::out_refund_no("T1", no),
        accepted: false,
        order_no: "A1".into(),
        out_trade_no: row.out_trade_no.clone(),
        amount: Fen(amount),
        reason: None,
        status: RefundStatus::Pending,
        refund_id: None,
        error: None,
        created_at: now_ms(),
    };
    j.begin_refund(&refund("R1", 60), Fen(100))
        .expect("first refund");
    assert!(j.begin_refund(&refund("R2", 41), Fen(100)).is_err());
    let failed = crate::machine::refund::Refund {
        status: RefundStatus::Failed,
        ..crate::machine::refund::Refund::pending()
    };
    j.record_refund("R1", &failed, "refund_failed", None, None)
        .expect("finish");
    j.begin_refund(&refund("R2", 100), Fen(100))
        .expect("a failed refund frees its amount");
    // Reconciliation finds them by the day they were asked for.
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let on = j.refunds_on(&today).expect("read");
    let nos: Vec<(Provider, &str)> = on.iter().map(|(p, f)| (*p, f.refund_no.as_str())).collect();
    assert_eq!(
        nos,
        vec![(Provider::Wechat, "R1"), (Provider::Wechat, "R2")]
    );
    assert!(j.refunds_on("2000-01-01").expect("read").is_empty());
}

#[test]
fn a_version_1_journal_is_migrated_keeping_its_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite");
    let c = code("134567890123456789");
    {
        let j = Journal::open(&path, "T1").expect("open");
        j.ensure_sale("A1", Fen(100), "x", None).expect("sale");
        let row = j.begin_attempt("A1", &c).expect("attempt");
        finish(&j, &row, Phase::Failed);
    }
    {
        // Put the file back to what a version-1 tillpay left.
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             DROP TABLE reconciled; DROP INDEX sales_waiting; DROP INDEX attempts_live;
             UPDATE attempts SET code_hash = lower(hex(code_hash)) || '00112233445566778899aabbccddeeff';
             ALTER TABLE attempts DROP COLUMN not_sent;
             CREATE INDEX attempts_phase ON attempts(phase);
             CREATE INDEX events_attempt ON events(out_trade_no, kind);
             DROP TABLE shifts; DROP INDEX sales_created; DROP INDEX refunds_created;
             CREATE TABLE sales_v1 (order_no TEXT PRIMARY KEY, amount INTEGER NOT NULL CHECK (amount > 0),
                 subject TEXT NOT NULL, local_date TEXT NOT NULL, created_at INTEGER NOT NULL,
                 cancelled INTEGER NOT NULL DEFAULT 0);
             INSERT INTO sales_v1 SELECT order_no, amount, subject, local_date, created_at, cancelled FROM sales;
             DROP TABLE sales; ALTER TABLE sales_v1 RENAME TO sales;
             ALTER TABLE refunds DROP COLUMN operator_id;
             ALTER TABLE attempts DROP COLUMN customer_paid; ALTER TABLE attempts DROP COLUMN discount;
             ALTER TABLE attempts DROP COLUMN payer;
             DROP INDEX attempts_code_hash; DROP INDEX events_attempt;
             ALTER TABLE attempts DROP COLUMN booked_amount;
             DROP INDEX refunds_status; DROP INDEX refunds_order;
             ALTER TABLE attempts DROP COLUMN used_number;
             ALTER TABLE refunds DROP COLUMN out_refund_no;
             ALTER TABLE refunds DROP COLUMN accepted;
             ALTER TABLE attempts DROP COLUMN background_revoke;
             ALTER TABLE attempts DROP COLUMN channel;
             PRAGMA user_version = 1;",
        )
        .expect("downgrade");
    }
    let j = Journal::open(&path, "T1").expect("reopen");
    assert_eq!(
        j.pragma("user_version").expect("pragma"),
        schema::VERSION.to_string()
    );
    assert_eq!(j.code_used(&c).expect("lookup").as_deref(), Some("A1"));
    assert_eq!(j.pragma("foreign_keys").expect("pragma"), "1");
    drop(j);
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        let (kind, len): (String, i64) = conn
            .query_row(
                "SELECT typeof(code_hash), length(code_hash) FROM attempts",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("hash");
        assert_eq!(
            (kind.as_str(), len),
            ("blob", 16),
            "the hash is its 16 bytes"
        );
        for table in ["sales", "attempts"] {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .expect("schema");
            assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        }
        let channel: Option<String> = conn
            .query_row("SELECT channel FROM attempts", [], |r| r.get(0))
            .expect("channel");
        assert_eq!(channel, None, "the provider's own channel is left null");
        let broken: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .expect("check");
        assert_eq!(broken, 0);
    }
    let j = Journal::open(&path, "T1").expect("reopen");
    // An attempt from before went through its provider's own channel.
    let (_, before) = j.sale("A1").expect("read").expect("sale");
    assert_eq!(before.first().map(|a| a.channel.as_str()), Some("wechat"));
    j.ensure_sale("B2", Fen(100), "x", None).expect("sale");
    assert!(
        matches!(j.begin_attempt("B2", &c), Err(JournalError::CodeUsed(ref o)) if o == "A1"),
        "a code used before the upgrade is still recognised"
    );
}

#[test]
fn a_sale_paid_after_midnight_is_reconciled_with_the_next_days_bill() {
    let (_d, j) = journal();
    let paid_at = |j: &Journal, order: &str, code_text: &str, local: &str, at: &str| {
        j.ensure_sale(order, Fen(100), "x", None).expect("sale");
        let row = j.begin_attempt(order, &code(code_text)).expect("attempt");
        let a = Attempt {
            phase: Phase::Paid,
            ..row.state
        };
        let mut rec = Record::new("paid");
        rec.paid = Some(PaidInfo {
            paid_by: Default::default(),
            transaction_id: format!("4200{order}"),
            paid_at: Some(at.into()),
            amount: None,
        });
        j.record(&row.out_trade_no, &a, &rec).expect("record");
        j.lock()
            .execute(
                "UPDATE sales SET local_date = ?2 WHERE order_no = ?1",
                [order, local],
            )
            .expect("date");
    };
    // The till's own clock (Beijing time for a till in China), whatever
    // zone this test runs in.
    let local = |d: u32, h: u32, m: u32, sec: u32| {
        use chrono::TimeZone;
        chrono::Local
            .with_ymd_and_hms(2026, 11, d, h, m, sec)
            .single()
            .expect("a local time")
            .to_rfc3339()
    };
    // Rung up at 23:59:58 on the 22nd, booked at 00:00:03 on the 23rd.
    let late = local(23, 0, 0, 3);
    paid_at(&j, "LATE", "134567890123456789", "2026-11-22", &late);
    let noon = local(22, 12, 0, 0);
    paid_at(&j, "NOON", "134567890123456788", "2026-11-22", &noon);
    // Never booked: by the sale's own date.
    j.ensure_sale("GONE", Fen(100), "x", None).expect("sale");
    let row = j
        .begin_attempt("GONE", &code("134567890123456787"))
        .expect("attempt");
    finish(&j, &row, Phase::Failed);
    j.lock()
        .execute(
            "UPDATE sales SET local_date = '2026-11-22' WHERE order_no = 'GONE'",
            [],
        )
        .expect("date");
    let orders = |d: &str| -> Vec<String> {
        j.attempts_on(d)
            .expect("read")
            .into_iter()
            .map(|a| a.order_no)
            .collect()
    };
    assert_eq!(orders("2026-11-22"), vec!["NOON", "GONE"]);
    assert_eq!(orders("2026-11-23"), vec!["LATE"]);
}

#[test]
fn a_journal_from_a_newer_tillpay_is_refused_as_unreadable_not_as_a_conflict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite");
    drop(Journal::open(&path, "T1").expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("newer");
    drop(conn);
    let e = Journal::open(&path, "T1").err().expect("refused");
    assert!(matches!(e, JournalError::Corrupt(_)), "{e:?}");
    assert!(e.to_string().contains("newer tillpay"), "{e}");
}

#[test]
fn a_restart_cancels_only_rounds_whose_code_was_never_sent() {
    let (_d, j) = journal();
    // Rung up, never sent (a crash between the sale and its attempt).
    j.ensure_sale("NEW", Fen(100), "x", None).expect("sale");
    // A second round after a failed attempt, left open the same way.
    j.ensure_sale("AGAIN", Fen(100), "x", None).expect("sale");
    let row = j
        .begin_attempt("AGAIN", &code("134567890123456781"))
        .expect("attempt");
    finish(&j, &row, Phase::Failed);
    j.ensure_sale("AGAIN", Fen(100), "x", None)
        .expect("new round");
    // Paid, and in flight: a restart leaves them to recovery.
    j.ensure_sale("PAID", Fen(100), "x", None).expect("sale");
    let row = j
        .begin_attempt("PAID", &code("134567890123456782"))
        .expect("attempt");
    finish(&j, &row, Phase::Paid);
    j.ensure_sale("FLYING", Fen(100), "x", None).expect("sale");
    j.begin_attempt("FLYING", &code("134567890123456783"))
        .expect("attempt");
    assert_eq!(j.cancel_orphan_sales().expect("cancel"), 2);
    let cancelled = |o: &str| j.sale(o).expect("read").expect("sale").0.cancelled;
    assert!(cancelled("NEW") && cancelled("AGAIN"));
    assert!(!cancelled("PAID") && !cancelled("FLYING"));
    assert_eq!(j.cancel_orphan_sales().expect("again"), 0, "once is enough");
}

/// Start-up reads only what is in flight or small: none of its queries
/// walks a table of every sale, attempt or event ever made.
#[test]
fn start_up_queries_use_indexes_not_scans_of_history() {
    let (_d, j) = journal();
    let conn = j.lock();
    let plan = |sql: &str| -> String {
        let mut s = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let rows = s
            .query_map([], |r| r.get::<_, String>(3))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect::<Vec<_>>();
        rows.join("; ")
    };
    for sql in [
        super::ORPHANS.to_string(),
        format!("SELECT * FROM attempts WHERE {}", super::reads::UNFINISHED),
        format!("SELECT * FROM attempts WHERE {}", super::reads::ATTENTION),
        "SELECT * FROM refunds WHERE status IN ('pending', 'processing')".to_string(),
        "SELECT order_no FROM attempts WHERE code_hash = 'x' AND not_sent = 0".to_string(),
    ] {
        let p = plan(&sql);
        // A search by index, or a walk of a partial index that holds only
        // the live rows; never a walk of a table or a whole index.
        let small = p.split("; ").all(|step| {
            step.starts_with("SEARCH")
                || step.ends_with("USING INDEX sales_waiting")
                || step.contains("USING INDEX attempts_live")
                || step.starts_with("MULTI-INDEX OR")
                || step.starts_with("INDEX ")
        });
        assert!(small, "{sql}\n  {p}");
    }
}
