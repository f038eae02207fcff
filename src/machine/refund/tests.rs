//! The refund machine: each answer of the refund call and the refund query,
//! every state against every event, and random walks that check a status
//! never moves backwards and every unsettled refund has a next call until
//! its window closes.

use super::*;
use proptest::prelude::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn timing() -> RefundTiming {
    RefundTiming::standard(S(5))
}

fn note(code: &str) -> GatewayNote {
    GatewayNote::new(code, "text")
}

fn answers() -> Vec<RefundAnswer> {
    vec![
        RefundAnswer::Refunded {
            refund_id: Some("R1".into()),
        },
        RefundAnswer::Processing(note("SUCCESS")),
        RefundAnswer::Failed(note("NOTENOUGH")),
        RefundAnswer::Unknown(note("SYSTEMERROR")),
        RefundAnswer::Later(note("FREQUENCY_LIMITED")),
        RefundAnswer::NotFound(note("REFUNDNOTEXIST")),
    ]
}

fn events() -> Vec<RefundEvent> {
    let mut out = vec![RefundEvent::Requested, RefundEvent::Resumed];
    for a in answers() {
        out.push(RefundEvent::Answered(a.clone()));
        out.push(RefundEvent::Queried(a));
    }
    out
}

fn states() -> Vec<Refund> {
    let mut out = Vec::new();
    for status in [
        RefundStatus::Pending,
        RefundStatus::Processing,
        RefundStatus::Refunded,
        RefundStatus::Failed,
    ] {
        for accepted in [false, true] {
            for tries in [0, 1, 30] {
                out.push(Refund {
                    status,
                    accepted,
                    tries,
                });
            }
        }
    }
    out
}

fn scheduled(acts: &[RefundAction]) -> Option<(RefundCall, Duration)> {
    acts.iter().find_map(|a| match a {
        RefundAction::Schedule { call, after } => Some((*call, *after)),
        _ => None,
    })
}

fn rank(s: RefundStatus) -> u8 {
    match s {
        RefundStatus::Pending => 0,
        RefundStatus::Processing => 1,
        RefundStatus::Refunded | RefundStatus::Failed => 2,
    }
}

#[test]
fn an_accepted_refund_is_confirmed_by_query_without_the_pos() {
    let t = timing();
    let (r, acts) = step(Refund::pending(), RefundEvent::Requested, S(0), &t);
    assert_eq!(scheduled(&acts), Some((RefundCall::Send, S(0))));
    // WeChat accepts: processing; the POS hears it, the daemon asks on.
    let (r, acts) = step(
        r,
        RefundEvent::Answered(RefundAnswer::Processing(note("SUCCESS"))),
        S(0),
        &t,
    );
    assert_eq!(r.status, RefundStatus::Processing);
    assert!(r.accepted);
    assert!(acts.contains(&RefundAction::Reply));
    assert!(!acts.contains(&RefundAction::Notify));
    assert_eq!(scheduled(&acts), Some((RefundCall::Query, S(5))));
    // Still processing: the next query waits twice as long.
    let (r, acts) = step(
        r,
        RefundEvent::Queried(RefundAnswer::Processing(note("PROCESSING"))),
        S(5),
        &t,
    );
    assert_eq!(scheduled(&acts), Some((RefundCall::Query, S(10))));
    assert!(
        !acts.contains(&RefundAction::Reply),
        "the POS heard already"
    );
    let (r, acts) = step(
        r,
        RefundEvent::Queried(RefundAnswer::Refunded {
            refund_id: Some("5030".into()),
        }),
        S(15),
        &t,
    );
    assert_eq!(r.status, RefundStatus::Refunded);
    assert!(acts.contains(&RefundAction::Notify), "refund.event");
    assert_eq!(scheduled(&acts), None);
}

#[test]
fn the_back_off_grows_to_an_hour() {
    let t = timing();
    let waits: Vec<u64> = (1..16).map(|n| backoff(n, &t).as_secs()).collect();
    assert_eq!(
        waits,
        [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600, 3600, 3600]
    );
}

#[test]
fn a_transient_refusal_is_sent_again_later_under_the_same_number() {
    let t = timing();
    let (r, acts) = step(
        Refund::pending(),
        RefundEvent::Answered(RefundAnswer::Later(note("FREQUENCY_LIMITED"))),
        S(0),
        &t,
    );
    assert_eq!(r.status, RefundStatus::Pending, "not failed for good");
    assert_eq!(scheduled(&acts), Some((RefundCall::Send, S(60))));
    assert!(acts.contains(&RefundAction::Reply));
}

#[test]
fn not_found_resends_a_refund_never_accepted_and_waits_for_an_accepted_one() {
    let t = timing();
    let unsure = Refund {
        status: RefundStatus::Processing,
        accepted: false,
        tries: 1,
    };
    let nf = || RefundEvent::Queried(RefundAnswer::NotFound(note("REFUNDNOTEXIST")));
    let (r, acts) = step(unsure, nf(), S(5), &t);
    assert_eq!(r.status, RefundStatus::Processing, "never back to pending");
    assert_eq!(scheduled(&acts).map(|s| s.0), Some(RefundCall::Send));
    let accepted = Refund {
        accepted: true,
        ..unsure
    };
    let (_, acts) = step(accepted, nf(), S(5), &t);
    assert_eq!(scheduled(&acts).map(|s| s.0), Some(RefundCall::Query));
}

#[test]
fn resume_sends_a_never_answered_refund_and_asks_about_the_rest() {
    let t = timing();
    let (_, acts) = step(Refund::pending(), RefundEvent::Resumed, S(99), &t);
    assert_eq!(scheduled(&acts), Some((RefundCall::Send, S(0))));
    let processing = Refund {
        status: RefundStatus::Processing,
        accepted: true,
        tries: 9,
    };
    let (r, acts) = step(processing, RefundEvent::Resumed, S(99), &t);
    assert_eq!(scheduled(&acts), Some((RefundCall::Query, S(0))));
    assert_eq!(r.tries, 0, "the back-off starts again");
}

#[test]
fn past_its_window_a_refund_is_left_to_an_operator() {
    let t = timing();
    let r = Refund {
        status: RefundStatus::Processing,
        accepted: true,
        tries: 40,
    };
    let (r, acts) = step(
        r,
        RefundEvent::Queried(RefundAnswer::Processing(note("PROCESSING"))),
        t.window,
        &t,
    );
    assert_eq!(r.status, RefundStatus::Processing);
    assert_eq!(scheduled(&acts), None);
    assert!(acts.iter().any(|a| matches!(
        a,
        RefundAction::Record {
            kind: "refund_unconfirmed",
            ..
        }
    )));
}

#[test]
fn every_state_and_event_moves_forward_and_leaves_nothing_stuck() {
    let t = timing();
    for r in states() {
        for ev in events() {
            for age in [S(0), S(3600), t.window - S(1)] {
                let (next, acts) = step(r, ev.clone(), age, &t);
                assert!(
                    rank(next.status) >= rank(r.status),
                    "{r:?} {ev:?}: moved backwards to {next:?}"
                );
                if r.status.is_final() {
                    assert!(acts.is_empty(), "{r:?} {ev:?}: a final refund acted");
                    continue;
                }
                let records = acts
                    .iter()
                    .filter(|a| matches!(a, RefundAction::Record { .. }))
                    .count();
                if next.status.is_final() {
                    assert!(acts.contains(&RefundAction::Notify), "{r:?} {ev:?}");
                    assert_eq!(scheduled(&acts), None);
                    assert!(records >= 1, "a final status is journaled");
                } else {
                    let stopped = acts.iter().any(|a| {
                        matches!(
                            a,
                            RefundAction::Record {
                                kind: "refund_unconfirmed",
                                ..
                            }
                        )
                    });
                    assert!(
                        scheduled(&acts).is_some() || stopped,
                        "{r:?} {ev:?} at {age:?}: stuck"
                    );
                }
                if next.accepted {
                    assert!(
                        r.accepted
                            || matches!(
                                ev,
                                RefundEvent::Answered(RefundAnswer::Processing(_))
                                    | RefundEvent::Queried(RefundAnswer::Processing(_))
                                    | RefundEvent::Answered(RefundAnswer::Refunded { .. })
                                    | RefundEvent::Queried(RefundAnswer::Refunded { .. })
                            ),
                        "{r:?} {ev:?}"
                    );
                }
            }
        }
    }
}

fn any_event() -> impl Strategy<Value = RefundEvent> {
    let all = events();
    (0..all.len()).prop_map(move |i| all[i].clone())
}

proptest! {
    /// A refund's status, as the POS sees it, never moves backwards, and a
    /// refund asked for is answered to the POS on the refund call's first
    /// answer.
    #[test]
    fn statuses_only_move_forward(walk in proptest::collection::vec(any_event(), 1..40)) {
        let t = timing();
        let mut r = Refund::pending();
        let mut age = Duration::ZERO;
        for ev in walk {
            let (next, acts) = step(r, ev, age, &t);
            prop_assert!(rank(next.status) >= rank(r.status));
            if let Some((_, after)) = scheduled(&acts) {
                age += after;
            }
            r = next;
        }
    }
}
