//! A shift's report over a real journal file: every kind of ending counted
//! where a cashier looks for it, and closing keeps the report and starts
//! the next shift empty.

use crate::domain::{AuthCode, Fen};
use crate::gateway::PaidInfo;
use crate::journal::{now_ms, Journal, RefundRow, RefundStatus};
use crate::machine::refund::Refund;
use crate::machine::{Attempt, Phase, Record};
use crate::shift;

fn code(s: &str) -> AuthCode {
    crate::gateway::recognise(s).expect("valid code")
}

/// A sale of `fen` by `cashier`, ended in `phase`.
fn sale(j: &Journal, order: &str, fen: u64, cashier: Option<&str>, c: &str, phase: Phase) {
    j.ensure_sale(order, Fen(fen), "x", cashier).expect("sale");
    let row = j.begin_attempt(order, &code(c)).expect("attempt");
    let mut rec = Record::new(phase.as_str());
    if phase == Phase::Paid {
        rec.paid = Some(PaidInfo {
            paid_by: Default::default(),
            transaction_id: format!("T{order}"),
            paid_at: None,
            amount: None,
        });
    }
    let a = Attempt { phase, ..row.state };
    j.record(&row.out_trade_no, &a, &rec).expect("record");
}

fn refund(j: &Journal, order: &str, no: &str, fen: u64, cashier: &str, status: RefundStatus) {
    let (_, attempts) = j.sale(order).expect("read").expect("sale");
    let row = RefundRow {
        operator_id: Some(cashier.into()),
        refund_no: no.into(),
        out_refund_no: crate::domain::out_refund_no("T1", no),
        accepted: false,
        order_no: order.into(),
        out_trade_no: attempts[0].out_trade_no.clone(),
        amount: Fen(fen),
        reason: None,
        status: RefundStatus::Pending,
        refund_id: None,
        error: None,
        created_at: now_ms(),
    };
    j.begin_refund(&row, Fen(100_000)).expect("refund");
    let r = Refund {
        status,
        ..Refund::pending()
    };
    j.record_refund(no, &r, "refund_step", None, None)
        .expect("record");
}

#[test]
fn the_report_counts_each_ending_per_provider_and_cashier_and_closing_starts_afresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(&dir.path().join("j.sqlite"), "T1").expect("open");
    sale(
        &j,
        "S1",
        1000,
        Some("alice"),
        "134567890123456781",
        Phase::Paid,
    );
    sale(
        &j,
        "S2",
        250,
        Some("bob"),
        "284567890123456782",
        Phase::Paid,
    );
    sale(&j, "S3", 300, None, "134567890123456783", Phase::Paid);
    sale(
        &j,
        "S4",
        400,
        Some("bob"),
        "284567890123456784",
        Phase::Revoked,
    );
    sale(
        &j,
        "S5",
        500,
        Some("alice"),
        "134567890123456785",
        Phase::Failed,
    );
    sale(
        &j,
        "S6",
        600,
        Some("alice"),
        "284567890123456786",
        Phase::NeedsAttention,
    );
    sale(
        &j,
        "S7",
        700,
        Some("alice"),
        "134567890123456787",
        Phase::Paying,
    );
    refund(&j, "S1", "R1", 200, "carol", RefundStatus::Refunded);
    refund(&j, "S2", "R2", 50, "bob", RefundStatus::Processing);
    refund(&j, "S2", "R3", 25, "bob", RefundStatus::Failed);

    let r = shift::running(&j).expect("report");
    assert_eq!(r.shift_no, 1);
    assert_eq!(r.closed_at, None);
    assert_eq!((r.sales.count, r.sales.amount), (3, 1550));
    assert_eq!((r.refunds.count, r.refunds.amount), (1, 200));
    assert_eq!(
        (r.refunds_processing.count, r.refunds_processing.amount),
        (1, 50)
    );
    assert_eq!((r.revoked.count, r.revoked.amount), (1, 400));
    assert_eq!(r.failed, 1);
    assert_eq!(r.needs_attention, 1);
    assert_eq!(r.needs_attention_orders, ["S6"]);
    assert_eq!(r.in_flight, 1);
    let wx = r.by_provider["wechat"];
    let ali = r.by_provider["alipay"];
    assert_eq!((wx.count, wx.amount, wx.refunded), (2, 1300, 200));
    assert_eq!((ali.count, ali.amount, ali.refunded), (1, 250, 0));
    assert_eq!(r.by_operator["alice"].amount, 1000);
    assert_eq!(r.by_operator["bob"].amount, 250);
    assert_eq!(r.by_operator[""].amount, 300, "a sale without a cashier");
    assert_eq!(
        r.by_operator["carol"].refunded, 200,
        "who refunded, not who sold"
    );
    assert!(r.first_sale.is_some() && r.last_sale.is_some());

    let (closed, next) = shift::close(&j).expect("close");
    assert_eq!(closed.sales, r.sales);
    assert!(closed.closed_at.is_some());
    assert_eq!(next.shift_no, 2);
    // Kept in the journal as it was at the close.
    let kept = shift::of(&j, 1).expect("read").expect("shift 1");
    assert_eq!(kept, closed);
    // The next shift starts empty; a sale rung up now is in it.
    let fresh = shift::running(&j).expect("report");
    assert_eq!((fresh.shift_no, fresh.sales.count), (2, 0));
    assert_eq!(closed.in_flight_orders, ["S7"]);
    // Handed on: the sale in flight at the close is paid now, the refund
    // processing then is confirmed now; the next shift counts them, and
    // nothing the first shift counted again.
    let (_, attempts) = j.sale("S7").expect("read").expect("S7");
    let mut rec = Record::new("paid");
    rec.paid = Some(PaidInfo {
        paid_by: Default::default(),
        transaction_id: "TS7".into(),
        paid_at: None,
        amount: None,
    });
    let paid = Attempt {
        phase: Phase::Paid,
        ..attempts[0].state
    };
    j.record(&attempts[0].out_trade_no, &paid, &rec)
        .expect("paid late");
    let landed = Refund {
        status: RefundStatus::Refunded,
        ..Refund::pending()
    };
    j.record_refund("R2", &landed, "refund_step", None, None)
        .expect("landed");
    let fresh = shift::running(&j).expect("report");
    assert_eq!(
        (fresh.sales.count, fresh.sales.amount),
        (1, 700),
        "{fresh:?}"
    );
    assert_eq!(
        (fresh.refunds.count, fresh.refunds.amount),
        (1, 50),
        "{fresh:?}"
    );
    assert_eq!(
        (fresh.revoked.count, fresh.failed, fresh.in_flight),
        (0, 0, 0),
        "{fresh:?}"
    );
    sale(
        &j,
        "S8",
        800,
        Some("alice"),
        "134567890123456788",
        Phase::Paid,
    );
    let fresh = shift::running(&j).expect("report");
    assert_eq!((fresh.sales.count, fresh.sales.amount), (2, 1500));
    assert!(shift::of(&j, 9).expect("read").is_none());
    // The same shift cannot be closed twice.
    assert!(j
        .close_shift(1, now_ms(), "{}", Default::default())
        .is_err());
}
