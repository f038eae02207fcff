//! The attempt machine, exhaustively: every state (counters at their
//! edges) against every event, on a grid of both clocks.

use super::*;

/// Every event the machine can be given, the awkward ones included.
fn all_events() -> Vec<Event> {
    let other_amount = PaidInfo {
        paid_by: Default::default(),
        amount: Some(Fen(1)),
        ..info()
    };
    let long_ago = PaidInfo {
        paid_by: Default::default(),
        paid_at: Some("2020-01-01T00:00:00+08:00".into()),
        ..info()
    };
    vec![
        Event::PayAnswered(PayAnswer::Paid(info())),
        Event::PayAnswered(PayAnswer::Paid(other_amount.clone())),
        Event::PayAnswered(PayAnswer::Paid(long_ago.clone())),
        Event::PayAnswered(PayAnswer::NotSent(note("x"))),
        Event::PayAnswered(PayAnswer::Failed {
            note: note("NOTENOUGH"),
            config_error: false,
        }),
        unknown("USERPAYING", true),
        unknown("SYSTEMERROR", false),
        number_used("ORDERPAID"),
        Event::QueryAnswered(QueryAnswer::Paid(info())),
        Event::QueryAnswered(QueryAnswer::Paid(other_amount)),
        Event::QueryAnswered(QueryAnswer::Paid(long_ago)),
        pending(),
        Event::QueryAnswered(QueryAnswer::Pending {
            note: note("ORDERNOTEXIST"),
            user_paying: false,
        }),
        Event::QueryAnswered(QueryAnswer::NotPaid(note("x"))),
        Event::QueryAnswered(QueryAnswer::PayError(note("x"))),
        Event::RevokeAnswered(RevokeAnswer::Revoked(RevokeEffect::Unstated)),
        Event::RevokeAnswered(RevokeAnswer::Revoked(RevokeEffect::Closed)),
        Event::RevokeAnswered(RevokeAnswer::Retry(note("x"))),
        Event::RevokeAnswered(RevokeAnswer::Refused(note("x"))),
        Event::RevokeAnswered(RevokeAnswer::NotFound(note("ACQ.TRADE_NOT_EXIST"))),
        Event::CancelRequested,
        Event::Resumed,
        Event::ProviderMissing,
        Event::OperatorResolved {
            verdict: Verdict::Paid(info()),
            note: note("OPERATOR_RESOLVED"),
        },
        Event::OperatorResolved {
            verdict: Verdict::Unpaid,
            note: note("OPERATOR_RESOLVED"),
        },
    ]
}

/// Every attempt state, with the counters at their edges.
fn all_states(t: &Timing) -> Vec<Attempt> {
    let mut out = Vec::new();
    for phase in Phase::ALL {
        for bits in 0..16u8 {
            // Only an attempt that needs an operator revokes in the background.
            if bits & 8 != 0 && phase != Phase::NeedsAttention {
                continue;
            }
            for revoke_tries in [0, t.revoke_max_attempts - 1, t.revoke_max_attempts] {
                out.push(Attempt {
                    phase,
                    revoke_tries,
                    cancel_requested: bits & 1 != 0,
                    seen_paid: bits & 2 != 0,
                    used_number: bits & 4 != 0,
                    background_revoke: bits & 8 != 0,
                });
            }
        }
    }
    out
}

/// Whether `ev` is one the engine can deliver to an attempt in `a`: the
/// answer to a call this phase makes, a cancel not yet journaled, a resume.
fn can_arrive(a: Attempt, ev: &Event) -> bool {
    match (a.phase, ev) {
        (_, Event::OperatorResolved { .. }) => a.phase == Phase::NeedsAttention,
        // Needs an operator, and still revoking in the background.
        (
            Phase::NeedsAttention,
            Event::RevokeAnswered(_) | Event::Resumed | Event::ProviderMissing,
        ) => a.background_revoke,
        (p, _) if p.is_final() => false,
        (Phase::Submitting, Event::PayAnswered(_)) => true,
        (Phase::Paying, Event::QueryAnswered(_)) => true,
        // In flight when a cancel (or a restart) moved it to revoking.
        (Phase::Revoking, Event::PayAnswered(_) | Event::QueryAnswered(_)) => true,
        (Phase::Revoking, Event::RevokeAnswered(_)) => true,
        (Phase::Submitting | Phase::Paying, Event::CancelRequested) => !a.cancel_requested,
        (_, Event::Resumed | Event::ProviderMissing) => true,
        _ => false,
    }
}

// Every state against every event, checked in one loop: the length is the cases.
#[test]
fn every_state_and_event_has_a_next_call_or_ends_and_keeps_the_rules() {
    // Exhaustive over states (counters at their edges) x events x a grid of
    // both clocks: an event that can arrive always changes something; an
    // in-flight attempt is never left with nothing scheduled (but while its
    // pay call is on the wire); every final step is journaled, then told
    // to the POS once; a revoke never goes out within 15 s of the pay
    // answer; nothing goes backwards.
    let t = wechat();
    let clocks: Vec<Clock> = [
        (0, 0),
        (3, 0),
        (14, 14),
        (15, 15),
        (29, 20),
        (30, 30),
        (100, 95),
        (86_410, 86_400),
    ]
    .into_iter()
    .map(|(p, s)| Clock {
        since_pay: S(p),
        since_sent: S(s),
    })
    .collect();
    for a in all_states(&t) {
        for ev in all_events() {
            for c in &clocks {
                let (next, acts) = crate::machine::step(a, ev.clone(), *c, &t, &facts());
                let ctx = format!("{a:?} {ev:?} {c:?}");
                if !can_arrive(a, &ev) && a.phase.is_final() {
                    assert!(acts.is_empty(), "{ctx}: a final attempt acted");
                    assert_eq!(next, a, "{ctx}");
                    continue;
                }
                if can_arrive(a, &ev) {
                    assert!(!acts.is_empty(), "{ctx}: ignored");
                }
                if acts.is_empty() {
                    assert_eq!(next, a, "{ctx}: changed without a record");
                    continue;
                }
                let first_notice = acts.iter().position(|x| matches!(x, Action::Notify(_)));
                let first_record = acts.iter().position(|x| matches!(x, Action::Record(_)));
                if next.phase != a.phase || next.phase.is_final() {
                    assert!(
                        first_record.is_some_and(|r| first_notice.is_none_or(|n| r < n)),
                        "{ctx}: journaled before the POS is told"
                    );
                }
                if next.phase.is_final() && next.background_revoke {
                    // The POS heard needs_attention once; the revokes go on.
                    assert_eq!(next.phase, Phase::NeedsAttention, "{ctx}");
                    let told = usize::from(a.phase != Phase::NeedsAttention);
                    assert_eq!(notices(&acts).len(), told, "{ctx}: told once");
                    assert!(
                        matches!(scheduled(&acts), Some((Call::Revoke, _))),
                        "{ctx}: a background revoke with no next try"
                    );
                    assert!(c.since_sent < REVOKE_LIFETIME, "{ctx}: revoking for ever");
                } else if next.phase.is_final() {
                    let told = usize::from(next.phase != a.phase);
                    assert_eq!(notices(&acts).len(), told, "{ctx}");
                    assert_eq!(scheduled(&acts), None, "{ctx}: a call after the end");
                } else {
                    let pay_on_the_wire = next.phase == Phase::Submitting;
                    assert!(
                        scheduled(&acts).is_some() || pay_on_the_wire,
                        "{ctx}: stuck"
                    );
                }
                if let Some((Call::Revoke, after)) = scheduled(&acts) {
                    assert!(
                        c.since_sent + after >= t.min_revoke_delay,
                        "{ctx}: revoke before 15 s"
                    );
                }
                if notices(&acts).contains(&Notice::Paid) && a.phase != Phase::NeedsAttention {
                    assert!(
                        !a.cancel_requested,
                        "{ctx}: paid after the cashier cancelled"
                    );
                }
                // One try more at most, and never revoking past the bound
                // (a state at the bound comes from a lowered config).
                assert!(next.revoke_tries <= a.revoke_tries + 1, "{ctx}");
                if next.phase != Phase::NeedsAttention && next.background_revoke {
                    panic!("{ctx}: background revoke outside needs_attention");
                }
                if next.phase == Phase::Revoking && next.revoke_tries > a.revoke_tries {
                    assert!(
                        next.revoke_tries < t.revoke_max_attempts,
                        "{ctx}: unbounded"
                    );
                }
                assert!(next.seen_paid >= a.seen_paid, "{ctx}");
                assert!(next.cancel_requested >= a.cancel_requested, "{ctx}");
                assert!(
                    next.used_number >= a.used_number || a.phase != Phase::Submitting,
                    "{ctx}"
                );
            }
        }
    }
}
