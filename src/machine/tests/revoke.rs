//! The attempt machine after the deadline or a cancel: revokes and their
//! bounded retries (payment-rules.md §12), what a revoke records (§13), and
//! resuming after a restart (§15).

use super::*;

#[test]
fn policy_12_revoke_retries_are_bounded_then_needs_attention() {
    let t = wechat();
    let mut a = in_phase(Phase::Revoking);
    for i in 1..t.revoke_max_attempts {
        let (next, acts) = step(
            a,
            Event::RevokeAnswered(RevokeAnswer::Retry(note("SYSTEMERROR"))),
            S(20),
            &t,
        );
        a = next;
        assert_eq!(a.phase, Phase::Revoking);
        assert_eq!(a.revoke_tries, i);
        assert_eq!(scheduled(&acts), Some((Call::Revoke, t.revoke_interval)));
    }
    let (a, acts) = step(
        a,
        Event::RevokeAnswered(RevokeAnswer::Retry(note("recall=Y"))),
        S(30),
        &t,
    );
    assert_eq!(a.phase, Phase::NeedsAttention);
    assert_eq!(a.revoke_tries, t.revoke_max_attempts);
    assert_eq!(notices(&acts), vec![Notice::NeedsAttention]);
    // The POS has its answer; the revokes go on, more slowly (background.rs).
    assert!(a.background_revoke);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(2))));
    // A refused revoke needs an operator at once.
    let (a, _) = step(
        in_phase(Phase::Revoking),
        Event::RevokeAnswered(RevokeAnswer::Refused(note("REVERSE_EXPIRE"))),
        S(20),
        &t,
    );
    assert_eq!(a.phase, Phase::NeedsAttention);
}

#[test]
fn policy_12_a_paid_query_does_not_stop_a_revoke() {
    // A query that was on the wire when a cancel started the revoke: the
    // revoke still goes out, and now knows it will refund.
    let (a, acts) = step(
        in_phase(Phase::Revoking),
        Event::QueryAnswered(QueryAnswer::Paid(info())),
        S(31),
        &wechat(),
    );
    assert_eq!(a.phase, Phase::Revoking);
    assert!(a.seen_paid);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(0))));
    let (a, acts) = step(in_phase(Phase::Revoking), pending(), S(3), &alipay());
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(
        scheduled(&acts),
        Some((Call::Revoke, S(0))),
        "never left without its revoke"
    );
}

#[test]
fn policy_13_a_payment_after_a_cancel_keeps_its_transaction_id() {
    let a = Attempt {
        cancel_requested: true,
        ..Attempt::submitting()
    };
    let (a, acts) = step(
        a,
        Event::PayAnswered(PayAnswer::Paid(info())),
        S(1),
        &alipay(),
    );
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(records(&acts)[0].paid, Some(info()));
}

#[test]
fn policy_12_a_payment_seen_while_revoking_keeps_its_transaction_id() {
    let (a, acts) = step(
        in_phase(Phase::Revoking),
        Event::QueryAnswered(QueryAnswer::Paid(info())),
        S(20),
        &wechat(),
    );
    assert_eq!(a.phase, Phase::Revoking);
    assert!(a.seen_paid, "the revoke will refund");
    assert_eq!(records(&acts)[0].paid, Some(info()));
}

#[test]
fn policy_13_revoke_records_closed_or_refunded() {
    let t = alipay();
    for (effect, seen_paid, want) in [
        (RevokeEffect::Closed, false, RevokeEffect::Closed),
        (RevokeEffect::Refunded, false, RevokeEffect::Refunded),
        (RevokeEffect::Unstated, true, RevokeEffect::Refunded),
        (RevokeEffect::Closed, true, RevokeEffect::Refunded),
        (RevokeEffect::Unstated, false, RevokeEffect::Unstated),
    ] {
        let a = Attempt {
            seen_paid,
            ..in_phase(Phase::Revoking)
        };
        let (a, acts) = step(
            a,
            Event::RevokeAnswered(RevokeAnswer::Revoked(effect)),
            S(31),
            &t,
        );
        assert_eq!(a.phase, Phase::Revoked);
        assert_eq!(records(&acts)[0].revoke_effect, Some(want));
        assert_eq!(notices(&acts), vec![Notice::Revoked]);
    }
}

#[test]
fn policy_15_resume_asks_the_gateway_first_even_past_the_deadline() {
    let t = wechat();
    for phase in [Phase::Submitting, Phase::Paying] {
        for secs in [12, 3600] {
            let (a, acts) = step(in_phase(phase), Event::Resumed, S(secs), &t);
            assert_eq!(a.phase, Phase::Paying);
            assert_eq!(scheduled(&acts), Some((Call::Query, S(0))));
            // A payment that succeeded while the daemon was down is paid.
            let (paid, acts) = step(
                a,
                Event::QueryAnswered(QueryAnswer::Paid(info())),
                S(secs),
                &t,
            );
            assert_eq!(paid.phase, Phase::Paid, "{phase:?} at {secs}s");
            assert_eq!(notices(&acts), vec![Notice::Paid]);
            // Unpaid or unanswerable past the deadline: revoke now.
            let (next, acts) = step(a, pending(), S(secs), &t);
            if secs >= 30 {
                assert_eq!(next.phase, Phase::Revoking);
                assert_eq!(scheduled(&acts), Some((Call::Revoke, S(0))));
            } else {
                assert_eq!(next.phase, Phase::Paying);
            }
        }
    }
    // A revoke under way is asked about, then goes on.
    let (a, acts) = step(in_phase(Phase::Revoking), Event::Resumed, S(40), &t);
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(scheduled(&acts), Some((Call::Query, S(0))));
    let (a, acts) = step(
        a,
        Event::QueryAnswered(QueryAnswer::Paid(info())),
        S(40),
        &t,
    );
    assert_eq!(a.phase, Phase::Revoking, "the revoke decides");
    assert!(a.seen_paid);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(0))));
    // A cancel journaled before the crash is honoured: even a payment
    // found by the first query goes back.
    let cancelled = Attempt {
        cancel_requested: true,
        ..in_phase(Phase::Paying)
    };
    let (a, _) = step(cancelled, Event::Resumed, S(16), &t);
    let (a, _) = step(
        a,
        Event::QueryAnswered(QueryAnswer::Paid(info())),
        S(16),
        &t,
    );
    assert_eq!(a.phase, Phase::Revoking);
}

#[test]
fn policy_12_a_revoke_that_finds_no_order_waits_out_the_pay_window_then_ends_unpaid() {
    let t = alipay();
    let not_found = || Event::RevokeAnswered(RevokeAnswer::NotFound(note("ACQ.TRADE_NOT_EXIST")));
    // 30 s after the pay was sent it could still land: ask again when the
    // window is over, and count no failed try.
    let (a, acts) = step(in_phase(Phase::Revoking), not_found(), S(30), &t);
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(a.revoke_tries, 0);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, PAY_WINDOW - S(30))));
    assert_eq!(records(&acts)[0].kind, "revoke_not_found_yet");
    // Past the window nothing can be taken any more: ended, closed, no
    // operator needed.
    let (a, acts) = step(a, not_found(), PAY_WINDOW, &t);
    assert_eq!(a.phase, Phase::Revoked);
    assert_eq!(notices(&acts), vec![Notice::Revoked]);
    let rec = records(&acts)[0];
    assert_eq!(rec.kind, "revoke_not_found");
    assert_eq!(rec.revoke_effect, Some(RevokeEffect::Closed));
    assert_eq!(scheduled(&acts), None);
    // But an order once seen paid that the gateway no longer knows is a
    // contradiction an operator must look at.
    let paid = Attempt {
        seen_paid: true,
        ..in_phase(Phase::Revoking)
    };
    let (a, _) = step(paid, not_found(), PAY_WINDOW * 2, &t);
    assert_eq!(a.phase, Phase::NeedsAttention);
}
