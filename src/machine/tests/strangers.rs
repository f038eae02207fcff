//! The newer events of the attempt machine: payments that are not this
//! sale's, what polling said, the 15 s from the pay answer, a resume
//! without the provider, operator verdicts.

use super::*;

#[test]
fn a_payment_of_another_amount_goes_to_an_operator_untouched() {
    // A verified "paid" for 1 fen on a 1234 fen sale is not this sale's
    // payment (a mis-booking, or another sale's out_trade_no): not paid,
    // and no revoke that could refund a stranger. An operator looks.
    let booked = PaidInfo {
        paid_by: Default::default(),
        amount: Some(Fen(1)),
        ..info()
    };
    for (phase, ev) in [
        (
            Phase::Submitting,
            Event::PayAnswered(PayAnswer::Paid(booked.clone())),
        ),
        (
            Phase::Paying,
            Event::QueryAnswered(QueryAnswer::Paid(booked.clone())),
        ),
        (
            Phase::Revoking,
            Event::QueryAnswered(QueryAnswer::Paid(booked.clone())),
        ),
    ] {
        let (a, acts) = step(in_phase(phase), ev, S(20), &wechat());
        assert_eq!(a.phase, Phase::NeedsAttention, "{phase:?}");
        let rec = records(&acts)[0];
        assert_eq!(rec.kind, "not_this_sale");
        assert_eq!(rec.paid, Some(booked.clone()), "transaction id kept");
        let why = rec.note.as_ref().expect("note");
        assert_eq!(why.code, "AMOUNT_MISMATCH");
        assert!(why.message.contains("1 fen") && why.message.contains("1234 fen"));
        assert_eq!(notices(&acts), vec![Notice::NeedsAttention]);
        assert_eq!(scheduled(&acts), None, "no further gateway call");
    }
    // The sale's own amount is simply paid.
    let own = PaidInfo {
        paid_by: Default::default(),
        amount: Some(Fen(1234)),
        ..info()
    };
    let (a, _) = step(
        Attempt::submitting(),
        Event::PayAnswered(PayAnswer::Paid(own)),
        S(1),
        &wechat(),
    );
    assert_eq!(a.phase, Phase::Paid);
}

#[test]
fn an_order_number_used_long_before_this_attempt_is_another_sales() {
    // "Already paid" to the one pay request, then a query showing a
    // payment from a day before the attempt was journaled: another sale's.
    let (a, acts) = step(
        Attempt::submitting(),
        number_used("ORDERPAID"),
        S(0),
        &wechat(),
    );
    assert!(a.used_number, "the answer is remembered (and journaled)");
    assert!(records(&acts).iter().all(|r| r.kind == "pay_unknown"));
    let day_before = chrono::DateTime::from_timestamp_millis(SUBMITTED - 24 * 3600 * 1000)
        .expect("time")
        .to_rfc3339();
    let old = PaidInfo {
        paid_by: Default::default(),
        paid_at: Some(day_before),
        ..info()
    };
    let (next, acts) = step(
        a,
        Event::QueryAnswered(QueryAnswer::Paid(old.clone())),
        S(5),
        &wechat(),
    );
    assert_eq!(next.phase, Phase::NeedsAttention);
    assert_eq!(
        records(&acts)[0].note.as_ref().map(|n| n.code.as_str()),
        Some("OUT_TRADE_NO_COLLISION")
    );
    // Without that answer, the same payment time is only the gateway's
    // clock: paid.
    let (next, _) = step(
        in_phase(Phase::Paying),
        Event::QueryAnswered(QueryAnswer::Paid(old)),
        S(5),
        &wechat(),
    );
    assert_eq!(next.phase, Phase::Paid);
    // A payment made just now after that answer is this attempt's.
    let now = chrono::DateTime::from_timestamp_millis(SUBMITTED + 2000)
        .expect("time")
        .to_rfc3339();
    let fresh = PaidInfo {
        paid_by: Default::default(),
        paid_at: Some(now),
        ..info()
    };
    let (next, _) = step(
        a,
        Event::QueryAnswered(QueryAnswer::Paid(fresh)),
        S(5),
        &wechat(),
    );
    assert_eq!(next.phase, Phase::Paid);
}

#[test]
fn what_a_query_said_while_polling_is_journaled_as_history() {
    for code in ["ORDERNOTEXIST", "BAD_SIGNATURE", "SYSTEMERROR"] {
        let (_, acts) = step(
            in_phase(Phase::Paying),
            Event::QueryAnswered(QueryAnswer::Pending {
                note: note(code),
                user_paying: false,
            }),
            S(10),
            &wechat(),
        );
        let rec = records(&acts);
        assert_eq!(rec.len(), 1, "{code}");
        assert_eq!(rec[0].kind, "query_pending");
        assert_eq!(rec[0].note.as_ref().map(|n| n.code.as_str()), Some(code));
        assert!(rec[0].history_only, "not the attempt's error");
    }
    // The customer confirming is a notice, not a journal row every 5 s.
    let (_, acts) = step(in_phase(Phase::Paying), pending(), S(10), &wechat());
    assert!(records(&acts).is_empty());
    assert_eq!(notices(&acts), vec![Notice::UserPaying]);
}

#[test]
fn policy_11_the_15s_count_from_the_pay_answer_not_from_before_the_connect() {
    // The pay call took 6 s (address lookup, connect) and then said
    // USERPAYING; the cashier cancels at once. WeChat counts its 15 s from
    // the request it received, so the reverse waits 15 s from the answer.
    let t = wechat();
    let c = Clock {
        since_pay: S(6),
        since_sent: S(0),
    };
    let a = Attempt {
        cancel_requested: true,
        ..Attempt::submitting()
    };
    let (a, acts) = crate::machine::step(a, unknown("USERPAYING", true), c, &t, &facts());
    assert_eq!(a.phase, Phase::Paying);
    assert_eq!(scheduled(&acts), Some((Call::Query, S(5))));
    let at = |since_pay, since_sent| Clock {
        since_pay: S(since_pay),
        since_sent: S(since_sent),
    };
    let (a, acts) = crate::machine::step(a, pending(), at(16, 10), &t, &facts());
    assert_eq!(
        a.phase,
        Phase::Paying,
        "15 s from the pay call, but only 10 from its answer"
    );
    assert_eq!(scheduled(&acts), Some((Call::Query, S(5))));
    let (a, acts) = crate::machine::step(a, pending(), at(21, 15), &t, &facts());
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(0))));
    // The 30 s deadline still counts from the pay call.
    let (a, acts) =
        crate::machine::step(in_phase(Phase::Paying), pending(), at(30, 24), &t, &facts());
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(0))));
}

#[test]
fn a_resume_without_the_provider_goes_to_an_operator() {
    for phase in [Phase::Submitting, Phase::Paying, Phase::Revoking] {
        let (a, acts) = step(in_phase(phase), Event::ProviderMissing, S(40), &wechat());
        assert_eq!(a.phase, Phase::NeedsAttention);
        let rec = records(&acts)[0];
        assert_eq!(rec.kind, "resume_impossible");
        assert!(rec.config_error);
        assert_eq!(scheduled(&acts), None);
    }
}

#[test]
fn an_operator_verdict_settles_only_an_attempt_that_needs_attention() {
    let paid = Verdict::Paid(PaidInfo {
        paid_by: Default::default(),
        paid_at: Some("2026-11-30T10:00:00+08:00".into()),
        ..info()
    });
    let who = || note("OPERATOR_RESOLVED");
    let (a, acts) = resolve(in_phase(Phase::NeedsAttention), paid.clone(), who());
    assert_eq!(a.phase, Phase::Paid);
    let rec = records(&acts)[0];
    assert_eq!(rec.kind, "operator_resolved");
    assert_eq!(
        rec.paid.as_ref().and_then(|p| p.paid_at.as_deref()),
        Some("2026-11-30T10:00:00+08:00"),
        "the payment's own time"
    );
    let (a, _) = resolve(in_phase(Phase::NeedsAttention), Verdict::Unpaid, who());
    assert_eq!(a.phase, Phase::Failed);
    for phase in Phase::ALL
        .into_iter()
        .filter(|p| *p != Phase::NeedsAttention)
    {
        let (a, acts) = step(
            in_phase(phase),
            Event::OperatorResolved {
                verdict: paid.clone(),
                note: who(),
            },
            S(1),
            &wechat(),
        );
        assert_eq!(a.phase, phase);
        assert!(acts.is_empty());
    }
}
