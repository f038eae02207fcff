//! One test per POLICY rule (4-15) that the machine enforces.

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn wechat() -> Timing {
    Timing {
        poll_interval: S(5),
        pay_timeout: S(30),
        revoke_interval: S(2),
        revoke_max_attempts: 5,
        min_revoke_delay: S(15),
    }
}

fn alipay() -> Timing {
    Timing {
        min_revoke_delay: Duration::ZERO,
        ..wechat()
    }
}

fn note(code: &str) -> GatewayNote {
    GatewayNote::new(code, "text")
}

fn info() -> PaidInfo {
    PaidInfo {
        transaction_id: "4200000001".into(),
        paid_at: None,
        amount: None,
    }
}

fn unknown(code: &str, user_paying: bool) -> Event {
    Event::PayAnswered(PayAnswer::Unknown {
        note: note(code),
        user_paying,
    })
}

fn pending() -> Event {
    Event::QueryAnswered(QueryAnswer::Pending {
        note: note("USERPAYING"),
        user_paying: true,
    })
}

fn in_phase(phase: Phase) -> Attempt {
    Attempt {
        phase,
        ..Attempt::submitting()
    }
}

fn scheduled(actions: &[Action]) -> Option<(Call, Duration)> {
    actions.iter().find_map(|a| match a {
        Action::Schedule { call, after } => Some((*call, *after)),
        _ => None,
    })
}

fn notices(actions: &[Action]) -> Vec<Notice> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn records(actions: &[Action]) -> Vec<&Record> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Record(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn policy_4_only_an_unsent_request_may_fail_without_asking() {
    let (a, acts) = step(
        Attempt::submitting(),
        Event::PayAnswered(PayAnswer::NotSent(note("CONNECT"))),
        S(0),
        &wechat(),
    );
    assert_eq!(a.phase, Phase::Failed);
    assert_eq!(notices(&acts), vec![Notice::Failed]);
    // A transport failure after the request left is unknown: poll.
    let (a, acts) = step(
        Attempt::submitting(),
        unknown("TIMEOUT", false),
        S(10),
        &wechat(),
    );
    assert_eq!(a.phase, Phase::Paying);
    assert_eq!(scheduled(&acts), Some((Call::Query, S(5))));
    assert!(notices(&acts).is_empty());
}

#[test]
fn policy_5_unknown_answers_poll_and_user_paying_tells_the_pos() {
    for (code, user_paying) in [
        ("USERPAYING", true),
        ("SYSTEMERROR", false),
        ("BANKERROR", false),
        ("ORDERPAID", false),
        ("10003", true),
        ("20000", false),
        ("ACQ.SYSTEM_ERROR", false),
        ("ACQ.TRADE_HAS_SUCCESS", false),
    ] {
        let (a, acts) = step(
            Attempt::submitting(),
            unknown(code, user_paying),
            S(1),
            &alipay(),
        );
        assert_eq!(a.phase, Phase::Paying, "{code}");
        assert_eq!(scheduled(&acts), Some((Call::Query, S(5))), "{code}");
        assert_eq!(
            notices(&acts).contains(&Notice::UserPaying),
            user_paying,
            "{code}"
        );
        let rec = records(&acts)[0];
        assert_eq!(rec.note.as_ref().map(|n| n.code.as_str()), Some(code));
    }
}

#[test]
fn policy_6_definite_failures_end_failed_with_the_gateway_code() {
    for (code, config_error) in [
        ("NOTENOUGH", false),
        ("AUTHCODEEXPIRE", false),
        ("SIGNERROR", true),
    ] {
        let (a, acts) = step(
            Attempt::submitting(),
            Event::PayAnswered(PayAnswer::Failed {
                note: note(code),
                config_error,
            }),
            S(1),
            &wechat(),
        );
        assert_eq!(a.phase, Phase::Failed);
        let rec = records(&acts)[0];
        assert_eq!(rec.note.as_ref().map(|n| n.code.as_str()), Some(code));
        assert_eq!(rec.config_error, config_error);
        assert_eq!(
            scheduled(&acts),
            None,
            "a failed attempt calls nothing more"
        );
    }
}

#[test]
fn policy_7_an_unverified_success_is_unknown_never_paid() {
    // Gateways turn an unverifiable "SUCCESS" into Unknown; the machine
    // must then poll, not record paid.
    let (a, acts) = step(
        Attempt::submitting(),
        unknown("BAD_SIGNATURE", false),
        S(0),
        &wechat(),
    );
    assert_eq!(a.phase, Phase::Paying);
    assert!(!notices(&acts).contains(&Notice::Paid));
    assert!(records(&acts).iter().all(|r| r.paid.is_none()));
}

#[test]
fn policy_8_polls_every_interval_until_the_deadline_then_revokes() {
    let t = alipay();
    let mut a = in_phase(Phase::Paying);
    let mut elapsed = S(0);
    let mut polls = 0;
    loop {
        let (next, acts) = step(a, pending(), elapsed, &t);
        a = next;
        match scheduled(&acts) {
            Some((Call::Query, after)) => {
                assert!(after <= t.poll_interval);
                elapsed += after;
                polls += 1;
                assert!(polls <= 10, "polling must end");
            }
            Some((Call::Revoke, after)) => {
                assert_eq!(after, Duration::ZERO);
                assert_eq!(elapsed, t.pay_timeout);
                break;
            }
            None => panic!("no next call while paying"),
        }
    }
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(polls, 6, "queries at 5,10,...,30 s");
}

#[test]
fn policy_8_the_last_poll_is_cut_to_the_deadline() {
    let (_, acts) = step(in_phase(Phase::Paying), pending(), S(27), &alipay());
    assert_eq!(scheduled(&acts), Some((Call::Query, S(3))));
}

#[test]
fn policy_9_query_results_map_to_paid_polling_or_not_paid() {
    let t = wechat();
    let cases: Vec<(QueryAnswer, Phase)> = vec![
        (QueryAnswer::Paid(info()), Phase::Paid),
        (
            QueryAnswer::Pending {
                note: note("NOTPAY"),
                user_paying: false,
            },
            Phase::Paying,
        ),
        (
            QueryAnswer::Pending {
                note: note("ORDERNOTEXIST"),
                user_paying: false,
            },
            Phase::Paying,
        ),
        (QueryAnswer::NotPaid(note("CLOSED")), Phase::Failed),
        (QueryAnswer::NotPaid(note("TRADE_CLOSED")), Phase::Failed),
        (QueryAnswer::PayError(note("PAYERROR")), Phase::Revoking),
    ];
    for (ans, want) in cases {
        let (a, acts) = step(
            in_phase(Phase::Paying),
            Event::QueryAnswered(ans.clone()),
            S(20),
            &t,
        );
        assert_eq!(a.phase, want, "{ans:?}");
        if want == Phase::Paid {
            assert_eq!(records(&acts)[0].paid, Some(info()));
        }
    }
}

#[test]
fn policy_9_payerror_is_still_revoked_not_before_15s() {
    let (a, acts) = step(
        in_phase(Phase::Paying),
        Event::QueryAnswered(QueryAnswer::PayError(note("PAYERROR"))),
        S(6),
        &wechat(),
    );
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(9))));
    assert_eq!(
        records(&acts)[0].note.as_ref().map(|n| n.code.as_str()),
        Some("PAYERROR")
    );
}

#[test]
fn policy_10_cashier_cancel_while_paying_revokes_even_a_later_payment() {
    let t = alipay();
    let (a, acts) = step(in_phase(Phase::Paying), Event::CancelRequested, S(3), &t);
    assert!(a.cancel_requested);
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(0))));
    assert_eq!(records(&acts)[0].kind, "cancel_requested");
    // A cancel during the pay call: the pay answer "paid" is revoked.
    let (a, acts) = step(Attempt::submitting(), Event::CancelRequested, S(0), &t);
    assert_eq!(
        scheduled(&acts),
        None,
        "the pay call in flight is not interrupted"
    );
    let (a, acts) = step(a, Event::PayAnswered(PayAnswer::Paid(info())), S(1), &t);
    assert_eq!(a.phase, Phase::Revoking);
    assert!(a.seen_paid);
    assert!(!notices(&acts).contains(&Notice::Paid));
}

#[test]
fn policy_11_wechat_cancel_at_3s_polls_until_15s_then_revokes() {
    let t = wechat();
    let (a, acts) = step(in_phase(Phase::Paying), Event::CancelRequested, S(3), &t);
    assert_eq!(a.phase, Phase::Paying);
    assert_eq!(scheduled(&acts), Some((Call::Query, S(5))));
    let (a, acts) = step(a, pending(), S(8), &t);
    assert_eq!(scheduled(&acts), Some((Call::Query, S(5))));
    let (a, acts) = step(a, pending(), S(13), &t);
    assert_eq!(
        scheduled(&acts),
        Some((Call::Query, S(2))),
        "cut to the 15 s mark"
    );
    let (a, acts) = step(a, pending(), S(15), &t);
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(0))));
    // And a deadline revoke never goes out before 15 s either.
    let short = Timing {
        pay_timeout: S(10),
        ..t
    };
    let (_, acts) = step(in_phase(Phase::Paying), pending(), S(10), &short);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(5))));
}

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
    assert_eq!(scheduled(&acts), None, "nothing retries silently for ever");
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
fn a_payment_of_another_amount_goes_to_an_operator_untouched() {
    // A verified "paid" for 1 fen on a 100 fen sale is not this sale's
    // payment (a mis-booking, or another sale's out_trade_no): not paid,
    // and no revoke that could refund a stranger. An operator looks.
    let booked = PaidInfo {
        amount: Some(Fen(1)),
        ..info()
    };
    for phase in [Phase::Submitting, Phase::Paying, Phase::Revoking] {
        let (a, acts) = step(
            in_phase(phase),
            Event::NotThisSale {
                info: booked.clone(),
                why: amount_mismatch(&booked, Fen(100)),
            },
            S(20),
            &wechat(),
        );
        assert_eq!(a.phase, Phase::NeedsAttention, "{phase:?}");
        let rec = records(&acts)[0];
        assert_eq!(rec.kind, "not_this_sale");
        assert_eq!(rec.paid, Some(booked.clone()), "transaction id kept");
        let why = rec.note.as_ref().expect("note");
        assert_eq!(why.code, "AMOUNT_MISMATCH");
        assert!(why.message.contains("1 fen") && why.message.contains("100 fen"));
        assert_eq!(notices(&acts), vec![Notice::NeedsAttention]);
        assert_eq!(scheduled(&acts), None, "no further gateway call");
    }
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
fn policy_15_resume_queries_before_the_deadline_and_revokes_after() {
    let t = wechat();
    for phase in [Phase::Submitting, Phase::Paying] {
        let (a, acts) = step(in_phase(phase), Event::Resumed, S(12), &t);
        assert_eq!(a.phase, Phase::Paying);
        assert_eq!(scheduled(&acts), Some((Call::Query, S(0))));
        let (a, acts) = step(in_phase(phase), Event::Resumed, S(3600), &t);
        assert_eq!(a.phase, Phase::Revoking);
        assert_eq!(scheduled(&acts), Some((Call::Revoke, S(0))));
    }
    let (a, acts) = step(in_phase(Phase::Revoking), Event::Resumed, S(40), &t);
    assert_eq!(a.phase, Phase::Revoking);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, S(0))));
    // A cancel journaled before the crash is honoured.
    let cancelled = Attempt {
        cancel_requested: true,
        ..in_phase(Phase::Paying)
    };
    let (a, _) = step(cancelled, Event::Resumed, S(16), &t);
    assert_eq!(a.phase, Phase::Revoking);
}

#[test]
fn final_phases_ignore_every_event() {
    let t = wechat();
    let events = [
        Event::PayAnswered(PayAnswer::Paid(info())),
        Event::QueryAnswered(QueryAnswer::Paid(info())),
        Event::RevokeAnswered(RevokeAnswer::Revoked(RevokeEffect::Closed)),
        Event::CancelRequested,
        Event::Resumed,
        Event::NotThisSale {
            info: info(),
            why: note("AMOUNT_MISMATCH"),
        },
    ];
    for phase in [
        Phase::Paid,
        Phase::Failed,
        Phase::Revoked,
        Phase::NeedsAttention,
    ] {
        for ev in events.clone() {
            let (a, acts) = step(in_phase(phase), ev, S(50), &t);
            assert_eq!(a.phase, phase);
            assert!(acts.is_empty());
        }
    }
}

#[test]
fn every_in_flight_state_has_a_next_call_or_ends() {
    // Exhaustive over phases x answers x a grid of times: the machine
    // never leaves an in-flight attempt with nothing scheduled (except
    // while its pay call is in flight), and every final step notifies.
    let t = wechat();
    let answers = vec![
        Event::PayAnswered(PayAnswer::Paid(info())),
        Event::PayAnswered(PayAnswer::NotSent(note("x"))),
        unknown("USERPAYING", true),
        Event::QueryAnswered(QueryAnswer::Paid(info())),
        pending(),
        Event::QueryAnswered(QueryAnswer::NotPaid(note("x"))),
        Event::QueryAnswered(QueryAnswer::PayError(note("x"))),
        Event::RevokeAnswered(RevokeAnswer::Revoked(RevokeEffect::Unstated)),
        Event::RevokeAnswered(RevokeAnswer::Retry(note("x"))),
        Event::RevokeAnswered(RevokeAnswer::Refused(note("x"))),
        Event::Resumed,
        Event::NotThisSale {
            info: info(),
            why: note("AMOUNT_MISMATCH"),
        },
    ];
    for phase in [Phase::Submitting, Phase::Paying, Phase::Revoking] {
        for cancel in [false, true] {
            for secs in [0, 3, 14, 15, 29, 30, 100] {
                for ev in answers.clone() {
                    let a = Attempt {
                        cancel_requested: cancel,
                        ..in_phase(phase)
                    };
                    let (next, acts) = step(a, ev.clone(), S(secs), &t);
                    if acts.is_empty() {
                        continue; // not an event for this phase
                    }
                    if next.phase.is_final() {
                        assert_eq!(notices(&acts).len(), 1, "{phase:?} {ev:?}");
                    } else {
                        assert!(
                            scheduled(&acts).is_some(),
                            "{phase:?} {ev:?} at {secs}s: stuck"
                        );
                    }
                    if let Some((Call::Revoke, after)) = scheduled(&acts) {
                        assert!(S(secs) + after >= t.min_revoke_delay, "revoke before 15 s");
                    }
                }
            }
        }
    }
}
