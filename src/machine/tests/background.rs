//! Revoking in the background (payment-rules.md §12): after
//! `revoke_max_attempts` the POS hears `needs_attention`, and tillpay goes
//! on revoking, more slowly, for 24 hours; a revoke that lands settles the
//! sale, and one that no retry can help stops the revokes, silently for the
//! POS, which has its answer.

use super::*;
use crate::machine::{BACKGROUND_REVOKE_MAX_INTERVAL, REVOKE_LIFETIME};

fn retry() -> Event {
    Event::RevokeAnswered(RevokeAnswer::Retry(note("TIMEOUT")))
}

/// An attempt whose `revoke_max_attempts` revokes went unanswered at 30 s.
fn given_up(t: &Timing) -> Attempt {
    let a = Attempt {
        revoke_tries: t.revoke_max_attempts - 1,
        ..in_phase(Phase::Revoking)
    };
    let (a, acts) = step(a, retry(), S(30), t);
    assert_eq!(a.phase, Phase::NeedsAttention);
    assert!(a.background_revoke);
    assert_eq!(notices(&acts), vec![Notice::NeedsAttention]);
    a
}

#[test]
fn background_revokes_slow_down_to_a_minute_and_tell_the_pos_nothing() {
    let t = wechat();
    let mut a = given_up(&t);
    let mut waits = Vec::new();
    for i in 0..8u64 {
        let (next, acts) = step(a, retry(), S(40 + 60 * i), &t);
        assert_eq!(next.phase, Phase::NeedsAttention);
        assert!(next.background_revoke);
        assert!(notices(&acts).is_empty(), "the POS has its answer");
        let recs = records(&acts);
        assert_eq!(recs.len(), 1);
        assert!(
            recs[0].history_only,
            "the attempt's error stays the give-up's"
        );
        let Some((Call::Revoke, wait)) = scheduled(&acts) else {
            panic!("no next revoke: {acts:?}");
        };
        waits.push(wait.as_secs());
        a = next;
    }
    assert_eq!(waits, [4, 8, 16, 32, 60, 60, 60, 60]);
    assert_eq!(BACKGROUND_REVOKE_MAX_INTERVAL, S(60));
}

#[test]
fn a_background_revoke_that_lands_settles_the_sale_revoked() {
    for seen_paid in [false, true] {
        let t = wechat();
        let a = Attempt {
            seen_paid,
            ..given_up(&t)
        };
        let (a, acts) = step(
            a,
            Event::RevokeAnswered(RevokeAnswer::Revoked(RevokeEffect::Unstated)),
            S(600),
            &t,
        );
        assert_eq!(a.phase, Phase::Revoked);
        assert!(!a.background_revoke);
        assert_eq!(notices(&acts), vec![Notice::Revoked]);
        assert_eq!(scheduled(&acts), None);
        let effect = records(&acts)[0].revoke_effect;
        let want = if seen_paid {
            RevokeEffect::Refunded
        } else {
            RevokeEffect::Unstated
        };
        assert_eq!(effect, Some(want));
    }
}

#[test]
fn background_revokes_stop_after_24_hours_or_on_a_refusal() {
    let t = wechat();
    let late = REVOKE_LIFETIME + S(1);
    let refused = Event::RevokeAnswered(RevokeAnswer::Refused(note("REVERSE_EXPIRE")));
    for ev in [retry(), refused] {
        let at = if matches!(ev, Event::RevokeAnswered(RevokeAnswer::Retry(_))) {
            late
        } else {
            S(600)
        };
        let (a, acts) = step(given_up(&t), ev, at, &t);
        assert_eq!(a.phase, Phase::NeedsAttention);
        assert!(!a.background_revoke, "stopped");
        assert!(notices(&acts).is_empty(), "told once already");
        assert_eq!(scheduled(&acts), None);
        assert!(!records(&acts)[0].history_only, "the operator sees why");
    }
    // Giving up after a day: no background revokes at all.
    let a = Attempt {
        revoke_tries: t.revoke_max_attempts - 1,
        ..in_phase(Phase::Revoking)
    };
    let (a, acts) = step(a, retry(), late, &t);
    assert_eq!(a.phase, Phase::NeedsAttention);
    assert!(!a.background_revoke);
    assert_eq!(scheduled(&acts), None);
}

#[test]
fn an_order_never_found_ends_closed_after_the_pay_window_unless_seen_paid() {
    let t = alipay();
    let nf = || Event::RevokeAnswered(RevokeAnswer::NotFound(note("ACQ.TRADE_NOT_EXIST")));
    // Within the window: asked again at its end.
    let (a, acts) = step(given_up(&t), nf(), S(60), &t);
    assert!(a.background_revoke && a.phase == Phase::NeedsAttention);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, PAY_WINDOW - S(60))));
    // After it: nothing can be taken any more.
    let (a, acts) = step(a, nf(), S(200), &t);
    assert_eq!(a.phase, Phase::Revoked);
    assert_eq!(notices(&acts), vec![Notice::Revoked]);
    // An answer once showed it paid: the operator decides.
    let paid = Attempt {
        seen_paid: true,
        ..given_up(&t)
    };
    let (a, acts) = step(paid, nf(), S(200), &t);
    assert!(!a.background_revoke && a.phase == Phase::NeedsAttention);
    assert!(notices(&acts).is_empty());
}

#[test]
fn a_restart_revokes_at_once_and_an_operator_verdict_stops_the_revokes() {
    let t = wechat();
    let (a, acts) = step(given_up(&t), Event::Resumed, S(3600), &t);
    assert!(a.background_revoke);
    assert_eq!(scheduled(&acts), Some((Call::Revoke, Duration::ZERO)));
    let (a2, acts) = step(a, Event::Resumed, REVOKE_LIFETIME, &t);
    assert!(!a2.background_revoke);
    assert_eq!(scheduled(&acts), None);
    let (a2, _) = step(a, Event::ProviderMissing, S(60), &t);
    assert!(
        !a2.background_revoke,
        "nothing can revoke without the provider"
    );
    for verdict in [Verdict::Unpaid, Verdict::Paid(info())] {
        let ev = Event::OperatorResolved {
            verdict,
            note: note("OPERATOR_RESOLVED"),
        };
        let (r, acts) = step(a, ev, S(60), &t);
        assert!(r.phase == Phase::Paid || r.phase == Phase::Failed);
        assert!(!r.background_revoke);
        assert_eq!(scheduled(&acts), None);
    }
    // Anything else changes nothing.
    let (same, acts) = step(a, Event::CancelRequested, S(60), &t);
    assert_eq!(same, a);
    assert!(acts.is_empty());
}
