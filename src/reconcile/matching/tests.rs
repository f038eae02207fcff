use super::*;
use crate::machine::Attempt;
use crate::reconcile::BillRow;

fn attempt(
    otn: &str,
    provider: Provider,
    amount: u64,
    phase: Phase,
    effect: Option<RevokeEffect>,
) -> AttemptRow {
    AttemptRow {
        paid_by: Default::default(),
        out_trade_no: otn.into(),
        order_no: otn.into(),
        seq: 1,
        provider,
        channel: provider.as_str().into(),
        amount: Fen(amount),
        code_masked: "1345**********6789".into(),
        code_hash: Vec::new(),
        state: Attempt {
            phase,
            ..Attempt::submitting()
        },
        submitted_at: 0,
        revoke_effect: effect,
        transaction_id: None,
        paid_at: None,
        error: None,
        updated_at: 0,
        booked: None,
    }
}

fn row(
    provider: Provider,
    kind: RowKind,
    otn: &str,
    amount: u64,
    refund_no: Option<&str>,
) -> BillRow {
    BillRow {
        provider,
        till: "T1".into(),
        kind,
        out_trade_no: otn.into(),
        transaction_id: format!("txn-{otn}"),
        refund_no: refund_no.map(str::to_string),
        amount: Fen(amount),
    }
}

fn refund_row(no: &str, otn: &str, amount: u64, status: RefundStatus) -> RefundRow {
    RefundRow {
        operator_id: None,
        refund_no: no.into(),
        // The bills in these tests name refunds as the POS did.
        out_refund_no: no.into(),
        accepted: false,
        order_no: otn.into(),
        out_trade_no: otn.into(),
        amount: Fen(amount),
        reason: None,
        status,
        refund_id: None,
        error: None,
        created_at: 0,
    }
}

fn bill(rows: Vec<BillRow>) -> Bill {
    Bill {
        total_rows: rows.len() as u64,
        rows,
        other_tills: 0,
    }
}

fn kinds(r: &Report) -> Vec<(DiscrepancyKind, String)> {
    r.discrepancies
        .iter()
        .map(|d| (d.kind, d.out_trade_no.clone()))
        .collect()
}

#[test]
fn a_clean_day_matches_everything_including_revokes_and_partial_refunds() {
    for p in [Provider::Wechat, Provider::Alipay] {
        let attempts = vec![
            attempt("A1", p, 1234, Phase::Paid, None),
            attempt("A2", p, 500, Phase::Revoked, Some(RevokeEffect::Refunded)),
            attempt("A3", p, 300, Phase::Revoked, Some(RevokeEffect::Closed)),
            attempt("A4", p, 100, Phase::Failed, None),
            attempt("A5", p, 800, Phase::Revoked, Some(RevokeEffect::Unstated)),
        ];
        let refunds = vec![(p, refund_row("R1", "A1", 234, RefundStatus::Refunded))];
        let b = bill(vec![
            row(p, RowKind::Payment, "A1", 1234, None),
            row(p, RowKind::Refund, "A1", 234, Some("R1")),
            row(p, RowKind::Payment, "A2", 500, None),
            row(p, RowKind::RevokeRefund, "A2", 500, None),
            row(p, RowKind::Payment, "A5", 800, None),
            row(p, RowKind::RevokeRefund, "A5", 800, None),
        ]);
        let r = reconcile("2026-11-22", &attempts, &refunds, &[(p, b)]);
        assert_eq!(r.discrepancies, vec![], "{p}");
        assert_eq!(r.matched, 6, "{p}");
        assert_eq!(r.totals[0].payments, 3);
        assert_eq!(r.totals[0].refunded, Fen(234 + 500 + 800));
    }
}

#[test]
fn counting_a_revoked_payment_as_paid_would_be_the_classic_trap() {
    // The bill has the payment and its revoke refund; the journal says
    // revoked. Ignoring the refund row would report money kept.
    let p = Provider::Alipay;
    let attempts = vec![attempt(
        "A2",
        p,
        500,
        Phase::Revoked,
        Some(RevokeEffect::Refunded),
    )];
    let only_payment = bill(vec![row(p, RowKind::Payment, "A2", 500, None)]);
    let r = reconcile("d", &attempts, &[], &[(p, only_payment)]);
    assert_eq!(
        kinds(&r),
        vec![(DiscrepancyKind::StatusMismatch, "A2".into())]
    );
}

#[test]
fn each_discrepancy_kind_is_reported() {
    let p = Provider::Wechat;
    let attempts = vec![
        attempt("PAID_NOT_BOOKED", p, 100, Phase::Paid, None),
        attempt("WRONG_AMOUNT", p, 100, Phase::Paid, None),
        attempt("FAILED_BUT_PAID", p, 100, Phase::Failed, None),
    ];
    let refunds = vec![(
        p,
        refund_row("R9", "WRONG_AMOUNT", 50, RefundStatus::Refunded),
    )];
    let b = bill(vec![
        row(p, RowKind::Payment, "WRONG_AMOUNT", 101, None),
        row(p, RowKind::Payment, "FAILED_BUT_PAID", 100, None),
        row(p, RowKind::Payment, "NOT_IN_JOURNAL", 700, None),
        row(p, RowKind::Refund, "WRONG_AMOUNT", 40, Some("R9")),
        row(p, RowKind::Refund, "WRONG_AMOUNT", 10, Some("R_UNKNOWN")),
    ]);
    let r = reconcile("d", &attempts, &refunds, &[(p, b)]);
    let mut got = kinds(&r);
    got.sort();
    let mut want = vec![
        (
            DiscrepancyKind::MissingRemote,
            "PAID_NOT_BOOKED".to_string(),
        ),
        (DiscrepancyKind::AmountMismatch, "WRONG_AMOUNT".to_string()),
        (
            DiscrepancyKind::StatusMismatch,
            "FAILED_BUT_PAID".to_string(),
        ),
        (DiscrepancyKind::MissingLocal, "NOT_IN_JOURNAL".to_string()),
        (DiscrepancyKind::AmountMismatch, "WRONG_AMOUNT".to_string()),
        (DiscrepancyKind::MissingLocal, "WRONG_AMOUNT".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);
    let d = r
        .discrepancies
        .iter()
        .find(|d| d.out_trade_no == "NOT_IN_JOURNAL")
        .expect("found");
    assert_eq!(d.local, None);
    assert_eq!(d.remote.as_deref(), Some("paid ¥7.00 (txn-NOT_IN_JOURNAL)"));
}

#[test]
fn only_the_providers_given_are_reconciled() {
    let attempts = vec![attempt("W1", Provider::Wechat, 100, Phase::Paid, None)];
    let r = reconcile("d", &attempts, &[], &[(Provider::Alipay, bill(vec![]))]);
    assert!(r.discrepancies.is_empty());
    assert_eq!(r.matched, 0);
}

#[test]
fn an_empty_bill_against_paid_sales_is_missing_remote() {
    let attempts = vec![attempt("A1", Provider::Alipay, 100, Phase::Paid, None)];
    let r = reconcile("d", &attempts, &[], &[(Provider::Alipay, bill(vec![]))]);
    assert_eq!(
        kinds(&r),
        vec![(DiscrepancyKind::MissingRemote, "A1".into())]
    );
}

#[test]
fn needs_attention_is_always_shown() {
    let attempts = vec![attempt(
        "X",
        Provider::Wechat,
        100,
        Phase::NeedsAttention,
        None,
    )];
    let r = reconcile("d", &attempts, &[], &[(Provider::Wechat, bill(vec![]))]);
    assert_eq!(
        kinds(&r),
        vec![(DiscrepancyKind::StatusMismatch, "X".into())]
    );
}

#[test]
fn a_revoke_for_another_amount_matches_what_was_booked() {
    // The gateway booked 1 fen on a 100 fen sale; tillpay revoked it
    // (AMOUNT_MISMATCH). The bill's refund is the 1 fen booked.
    let p = Provider::Wechat;
    let mut a = attempt("M1", p, 100, Phase::Revoked, Some(RevokeEffect::Refunded));
    a.booked = Some(Fen(1));
    let b = bill(vec![
        row(p, RowKind::Payment, "M1", 1, None),
        row(p, RowKind::RevokeRefund, "M1", 1, None),
    ]);
    let r = reconcile("d", std::slice::from_ref(&a), &[], &[(p, b)]);
    assert_eq!(r.discrepancies, vec![]);
    // Only 1 fen went back while 100 was booked: reported.
    a.booked = Some(Fen(100));
    let b = bill(vec![
        row(p, RowKind::Payment, "M1", 100, None),
        row(p, RowKind::RevokeRefund, "M1", 1, None),
    ]);
    let r = reconcile("d", &[a], &[], &[(p, b)]);
    assert_eq!(
        kinds(&r),
        vec![(DiscrepancyKind::AmountMismatch, "M1".into())]
    );
}

#[test]
fn a_refund_is_reconciled_on_its_own_day_not_its_sales() {
    // Sold on the 22nd, refunded on the 23rd: the 23rd's bill has only the
    // refund row, and the 23rd's journal only the refund.
    let p = Provider::Alipay;
    let refunds = vec![(p, refund_row("R5", "S5", 300, RefundStatus::Refunded))];
    let b = bill(vec![row(p, RowKind::Refund, "S5", 300, Some("R5"))]);
    let r = reconcile("2026-11-23", &[], &refunds, &[(p, b)]);
    assert_eq!(r.discrepancies, vec![]);
    assert_eq!(r.matched, 1);
    // A refund of the other provider is not looked for in this bill.
    let other = vec![(
        Provider::Wechat,
        refund_row("R6", "S6", 300, RefundStatus::Refunded),
    )];
    let r = reconcile("2026-11-23", &[], &other, &[(p, bill(vec![]))]);
    assert_eq!(r.discrepancies, vec![]);
}
