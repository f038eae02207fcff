//! One test per payment rule (payment-rules.md §4-15) that the machine enforces.

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// The sale of most tests: 1234 fen, journaled at [`SUBMITTED`].
const SUBMITTED: i64 = 1_780_000_000_000;

fn facts() -> Facts {
    Facts {
        amount: Fen(1234),
        submitted_at_ms: SUBMITTED,
    }
}

/// A step where the pay request was answered at once (both clocks equal).
fn step(a: Attempt, ev: Event, elapsed: Duration, t: &Timing) -> Step {
    super::step(a, ev, Clock::at(elapsed), t, &facts())
}

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
        paid_by: Default::default(),
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

/// "This order number is already paid / used" (ORDERPAID, ACQ.TRADE_HAS_SUCCESS).
fn number_used(code: &str) -> Event {
    Event::PayAnswered(PayAnswer::OrderNumberUsed(note(code)))
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
        // The "order number used" answers arrive as their own variant.
        let used = matches!(code, "ORDERPAID" | "ACQ.TRADE_HAS_SUCCESS");
        let event = if used {
            number_used(code)
        } else {
            unknown(code, user_paying)
        };
        let (a, acts) = step(Attempt::submitting(), event, S(1), &alipay());
        assert_eq!(a.phase, Phase::Paying, "{code}");
        assert_eq!(a.used_number, used, "{code}");
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

mod background;
mod exhaustive;
mod revoke;
mod strangers;
