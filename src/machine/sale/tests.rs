//! The sale machine, exhaustively: every phase against every event with
//! every combination of its facts, and random walks checked against the
//! promises a POS relies on.

use super::*;
use proptest::prelude::*;

const PHASES: [SalePhase; 6] = [
    SalePhase::Open,
    SalePhase::WaitingScan,
    SalePhase::Attempting,
    SalePhase::Stranded,
    SalePhase::Paid,
    SalePhase::NeedsAttention,
];

fn events() -> Vec<SaleEvent> {
    let mut out = Vec::new();
    for bits in 0..16u8 {
        out.push(SaleEvent::Charge {
            amount_matches: bits & 1 != 0,
            typed: bits & 2 != 0,
            code_used: bits & 4 != 0,
            scanner_free: bits & 8 != 0,
        });
    }
    out.extend([
        SaleEvent::Scanned { code_used: false },
        SaleEvent::Scanned { code_used: true },
        SaleEvent::ScanTimedOut,
        SaleEvent::Cancel,
        SaleEvent::AttemptNotStarted,
        SaleEvent::AttemptHalted,
        SaleEvent::Resumed,
    ]);
    out.extend(Phase::ALL.map(SaleEvent::AttemptEnded));
    out
}

fn is_request(ev: SaleEvent) -> bool {
    matches!(ev, SaleEvent::Charge { .. } | SaleEvent::Cancel)
}

/// How a request was taken: answered now, refused, or left waiting.
fn answers(acts: &[SaleAction]) -> usize {
    acts.iter()
        .filter(|a| {
            matches!(
                a,
                SaleAction::AnswerNow | SaleAction::Refuse(_) | SaleAction::Wait
            )
        })
        .count()
}

#[test]
fn every_request_in_every_phase_is_answered_refused_or_waits_exactly_once() {
    for p in PHASES {
        for ev in events().into_iter().filter(|e| is_request(*e)) {
            let (_, acts) = step(p, ev);
            assert_eq!(answers(&acts), 1, "{p:?} {ev:?}: {acts:?}");
        }
    }
}

#[test]
fn the_scanner_is_held_exactly_while_waiting_for_a_scan() {
    for p in PHASES {
        for ev in events() {
            let (next, acts) = step(p, ev);
            let arms = acts.contains(&SaleAction::Arm);
            let disarms = acts.contains(&SaleAction::Disarm);
            let held_after = (p == SalePhase::WaitingScan || arms) && !disarms;
            assert_eq!(
                held_after,
                next == SalePhase::WaitingScan,
                "{p:?} {ev:?} -> {next:?}: {acts:?}"
            );
            if arms {
                assert!(
                    matches!(
                        ev,
                        SaleEvent::Charge {
                            scanner_free: true,
                            ..
                        }
                    ),
                    "armed without the scanner: {p:?} {ev:?}"
                );
            }
        }
    }
}

#[test]
fn an_attempt_starts_only_from_a_sale_with_nothing_in_flight_or_paid() {
    for p in PHASES {
        for ev in events() {
            let (next, acts) = step(p, ev);
            if acts.contains(&SaleAction::StartAttempt) {
                assert!(
                    matches!(p, SalePhase::Open | SalePhase::WaitingScan),
                    "{p:?} {ev:?}"
                );
                assert_eq!(next, SalePhase::Attempting);
                // payment-rules.md §2: a code sent before is never sent again.
                assert!(
                    !matches!(
                        ev,
                        SaleEvent::Charge {
                            code_used: true,
                            ..
                        }
                    ) && !matches!(ev, SaleEvent::Scanned { code_used: true }),
                    "{p:?} {ev:?}"
                );
            }
        }
    }
}

#[test]
fn a_paid_sale_stays_paid_and_is_never_charged_again() {
    for ev in events() {
        let (next, acts) = step(SalePhase::Paid, ev);
        assert_eq!(next, SalePhase::Paid, "{ev:?}");
        assert!(!acts.contains(&SaleAction::StartAttempt));
        assert!(!acts.contains(&SaleAction::Arm));
    }
}

#[test]
fn a_cancel_is_answered_only_once_the_sale_is_final() {
    for p in PHASES {
        let (next, acts) = step(p, SaleEvent::Cancel);
        match p {
            // The attempt's end answers it (its revoke, or its payment).
            SalePhase::Attempting => {
                assert_eq!(acts, vec![SaleAction::Wait, SaleAction::CancelAttempt])
            }
            SalePhase::Stranded => {
                assert_eq!(acts, vec![SaleAction::Refuse(Refusal::Unresolved)])
            }
            _ => {
                assert!(acts.contains(&SaleAction::AnswerNow), "{p:?}");
                assert!(
                    !matches!(next, SalePhase::WaitingScan | SalePhase::Attempting),
                    "{p:?}: answered while not final"
                );
            }
        }
    }
}

#[test]
fn a_second_charge_while_waiting_or_in_flight_changes_nothing() {
    for p in [
        SalePhase::WaitingScan,
        SalePhase::Attempting,
        SalePhase::Stranded,
    ] {
        for ev in events()
            .into_iter()
            .filter(|e| matches!(e, SaleEvent::Charge { .. }))
        {
            let (next, acts) = step(p, ev);
            assert_eq!(next, p);
            assert!(
                matches!(acts.as_slice(), [SaleAction::Refuse(_)]),
                "{acts:?}"
            );
        }
    }
}

#[test]
fn the_end_of_an_attempt_decides_the_sale() {
    let cases = [
        (Phase::Paid, SalePhase::Paid),
        (Phase::Failed, SalePhase::Open),
        (Phase::Revoked, SalePhase::Open),
        (Phase::NeedsAttention, SalePhase::NeedsAttention),
    ];
    for (attempt, sale) in cases {
        let (next, acts) = step(SalePhase::Attempting, SaleEvent::AttemptEnded(attempt));
        assert_eq!(next, sale);
        assert_eq!(acts, vec![SaleAction::AnswerWaiters]);
    }
    // An operator's verdict on an attempt that needs attention.
    assert_eq!(
        step(
            SalePhase::NeedsAttention,
            SaleEvent::AttemptEnded(Phase::Paid)
        )
        .0,
        SalePhase::Paid
    );
    assert_eq!(
        step(
            SalePhase::NeedsAttention,
            SaleEvent::AttemptEnded(Phase::Failed)
        )
        .0,
        SalePhase::Open
    );
}

#[test]
fn the_phase_at_start_up_comes_from_the_attempts() {
    use Phase::*;
    assert_eq!(SalePhase::from_attempts(&[]), SalePhase::Open);
    assert_eq!(
        SalePhase::from_attempts(&[Failed, Revoked]),
        SalePhase::Open
    );
    assert_eq!(SalePhase::from_attempts(&[Failed, Paid]), SalePhase::Paid);
    assert_eq!(
        SalePhase::from_attempts(&[Failed, Paying]),
        SalePhase::Stranded
    );
    assert_eq!(
        SalePhase::from_attempts(&[NeedsAttention]),
        SalePhase::NeedsAttention
    );
}

fn any_event() -> impl Strategy<Value = SaleEvent> {
    let all = events();
    (0..all.len()).prop_map(move |i| all[i])
}

proptest! {
    /// Random walks: every client left waiting is answered when its round
    /// ends, nobody waits on a sale with nothing in flight, and a sale
    /// that was answered paid is paid for ever.
    #[test]
    fn waiting_clients_are_answered_when_the_round_ends(walk in proptest::collection::vec(any_event(), 1..60)) {
        let mut p = SalePhase::Open;
        let mut waiting = 0usize;
        let mut paid = false;
        for ev in walk {
            let (next, acts) = step(p, ev);
            for a in &acts {
                match a {
                    SaleAction::Wait => waiting += 1,
                    SaleAction::AnswerWaiters => waiting = 0,
                    _ => {}
                }
            }
            if paid {
                prop_assert_eq!(next, SalePhase::Paid);
            }
            paid |= next == SalePhase::Paid;
            if !matches!(next, SalePhase::WaitingScan | SalePhase::Attempting) {
                prop_assert_eq!(waiting, 0, "{:?} -> {:?} left clients waiting", p, next);
            }
            p = next;
        }
    }
}
