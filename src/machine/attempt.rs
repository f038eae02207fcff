//! The attempt machine's transitions: [`step`] and what it calls. The
//! types it works on are in the parent module.
//!
//! Over 400 lines on purpose: the whole attempt machine, every transition, in one file.

use std::time::Duration;

use super::{
    Action, Attempt, Call, Clock, Event, Facts, Notice, Phase, Record, Step, Timing, Verdict,
    BACKGROUND_REVOKE_MAX_INTERVAL, PAY_WINDOW, REVOKE_LIFETIME,
};
use crate::domain::Fen;
use crate::gateway::{GatewayNote, PaidInfo, PayAnswer, QueryAnswer, RevokeAnswer, RevokeEffect};

/// The next state and actions of `a` on `ev`. One arm per (phase, event)
/// pair that means something, so the function reads as the machine's table;
/// longer than most for that reason.
// One match on purpose: every transition of the attempt machine in one place is the point of the machine.
pub fn step(a: Attempt, ev: Event, c: Clock, t: &Timing, f: &Facts) -> Step {
    if let Event::OperatorResolved { verdict, note } = ev {
        return resolve(a, verdict, note);
    }
    if a.phase.is_final() {
        return match ev {
            _ if !a.background_revoke => (a, Vec::new()),
            Event::RevokeAnswered(ans) => on_revoke(a, ans, c, t),
            Event::Resumed => resume_background(a, c, t),
            Event::ProviderMissing => give_up(a, provider_missing()),
            _ => (a, Vec::new()),
        };
    }
    // A verified "paid" that is not this sale's payment goes to an
    // operator, whatever the phase.
    let stranger = match &ev {
        Event::PayAnswered(PayAnswer::Paid(info))
        | Event::QueryAnswered(QueryAnswer::Paid(info)) => {
            not_ours(a, info, f).map(|why| (info.clone(), why))
        }
        _ => None,
    };
    if let Some((info, why)) = stranger {
        return not_this_sale(a, info, why);
    }
    match (a.phase, ev) {
        (Phase::Submitting, Event::PayAnswered(ans)) => on_pay(a, ans, c, t),
        (Phase::Paying, Event::QueryAnswered(ans)) => on_query(a, ans, c, t),
        (Phase::Revoking, Event::RevokeAnswered(ans)) => on_revoke(a, ans, c, t),
        (Phase::Submitting | Phase::Paying, Event::CancelRequested) if !a.cancel_requested => {
            let a = Attempt {
                cancel_requested: true,
                ..a
            };
            let mut actions = vec![Action::Record(Record::new("cancel_requested"))];
            if a.phase == Phase::Paying {
                // While the pay call is in flight there is nothing to
                // reschedule: its answer decides (and sees the cancel).
                let (a2, more) = keep_polling(a, c, t);
                actions.extend(more);
                return (a2, actions);
            }
            (a, actions)
        }
        // After a restart, ask first (payment-rules.md §15): the pay request may or may
        // not have left, and a payment may have succeeded while the daemon
        // was down. Only a query that shows it unpaid, or cannot answer,
        // leads to a revoke, even past the deadline. A revoke that was under
        // way is asked about too: the answer tells whether it will refund,
        // and the revoke then goes on.
        (Phase::Submitting | Phase::Paying | Phase::Revoking, Event::Resumed) => {
            let phase = match a.phase {
                Phase::Revoking => Phase::Revoking,
                _ => Phase::Paying,
            };
            (
                Attempt { phase, ..a },
                vec![
                    Action::Record(Record::new("resumed")),
                    Action::Schedule {
                        call: Call::Query,
                        after: Duration::ZERO,
                    },
                ],
            )
        }
        // The provider was removed from the config with money possibly in
        // flight: only an operator can settle it now.
        (_, Event::ProviderMissing) => attention(a, provider_missing()),
        // A pay or query answer that was in flight when a cancel moved the
        // attempt to revoking: the revoke decides (payment-rules.md §12), but it must
        // still be sent, and a paid answer means the revoke will refund.
        (Phase::Revoking, Event::QueryAnswered(ans)) => {
            let paid = match ans {
                QueryAnswer::Paid(info) => Some(info),
                _ => None,
            };
            revoke_after_stray_answer(a, paid, c, t)
        }
        (Phase::Revoking, Event::PayAnswered(ans)) => {
            let paid = match ans {
                PayAnswer::Paid(info) => Some(info),
                _ => None,
            };
            revoke_after_stray_answer(a, paid, c, t)
        }
        // Anything else (a duplicate cancel, an answer to a call this phase
        // never makes, a verdict on an attempt still in flight) changes
        // nothing.
        _ => (a, Vec::new()),
    }
}

/// Why a verified paid answer is not this attempt's payment, if it is not:
/// another amount, or (after an "order number already used" answer) a
/// payment made well before this attempt was sent.
fn not_ours(a: Attempt, info: &PaidInfo, f: &Facts) -> Option<GatewayNote> {
    if info.amount.is_some_and(|x| x != f.amount) {
        return Some(amount_mismatch(info, f.amount));
    }
    // Five minutes of slack for the till's clock against the gateway's.
    let paid_ms = info
        .paid_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis());
    let long_before = paid_ms.is_some_and(|p| p < f.submitted_at_ms - 5 * 60 * 1000);
    (a.used_number && long_before).then(|| order_number_collision(info))
}

fn provider_missing() -> Record {
    let mut rec = Record::new("resume_impossible").note(GatewayNote::new(
        "PROVIDER_NOT_CONFIGURED",
        "this attempt's provider is no longer configured: nothing can ask the gateway; \
         check the order in the merchant portal",
    ));
    rec.config_error = true;
    rec
}

fn on_pay(a: Attempt, ans: PayAnswer, c: Clock, t: &Timing) -> Step {
    match ans {
        PayAnswer::Paid(info) => paid(a, info, c, t),
        PayAnswer::Failed { note, config_error } => {
            let mut rec = Record::new("pay_failed").note(note);
            rec.config_error = config_error;
            fail(a, rec)
        }
        PayAnswer::NotSent(note) => fail(a, Record::new("pay_not_sent").note(note)),
        PayAnswer::OrderNumberUsed(note) => {
            let a = Attempt {
                used_number: true,
                ..a
            };
            on_pay_unknown(a, note, false, c, t)
        }
        PayAnswer::Unknown { note, user_paying } => on_pay_unknown(a, note, user_paying, c, t),
    }
}

fn on_pay_unknown(a: Attempt, note: GatewayNote, user_paying: bool, c: Clock, t: &Timing) -> Step {
    let a = Attempt {
        phase: Phase::Paying,
        ..a
    };
    let mut actions = vec![Action::Record(Record::new("pay_unknown").note(note))];
    if user_paying {
        actions.push(Action::Notify(Notice::UserPaying));
    }
    let (a, more) = keep_polling(a, c, t);
    actions.extend(more);
    (a, actions)
}

fn on_query(a: Attempt, ans: QueryAnswer, c: Clock, t: &Timing) -> Step {
    match ans {
        QueryAnswer::Paid(info) => paid(a, info, c, t),
        QueryAnswer::Pending { note, user_paying } => {
            let (next, more) = keep_polling(a, c, t);
            let mut actions = Vec::new();
            if !user_paying {
                // ORDERNOTEXIST, a bad signature, a system error: kept in
                // the attempt's history for the operator.
                let mut rec = Record::new("query_pending").note(note);
                rec.history_only = true;
                actions.push(Action::Record(rec));
            } else if next.phase == Phase::Paying {
                // Still confirming, and still polling (not when the
                // deadline turns it into a revoke).
                actions.push(Action::Notify(Notice::UserPaying));
            }
            actions.extend(more);
            (next, actions)
        }
        QueryAnswer::NotPaid(note) => fail(a, Record::new("query_not_paid").note(note)),
        // PAYERROR: not paid, but revoke anyway to close the loop (payment-rules.md §9).
        QueryAnswer::PayError(note) => {
            let (a, mut actions) = start_revoke(a, c, t);
            if let Some(Action::Record(r)) = actions.first_mut() {
                r.note = Some(note);
            }
            (a, actions)
        }
    }
}

fn on_revoke(a: Attempt, ans: RevokeAnswer, c: Clock, t: &Timing) -> Step {
    match ans {
        RevokeAnswer::Revoked(effect) => {
            // A verified answer showed the order paid: the revoke refunded
            // it, whatever the gateway says (WeChat's reverse says nothing,
            // and the query after it may not either).
            let effect = match effect {
                RevokeEffect::Unstated | RevokeEffect::Closed if a.seen_paid => {
                    RevokeEffect::Refunded
                }
                e => e,
            };
            let a = Attempt {
                phase: Phase::Revoked,
                background_revoke: false,
                ..a
            };
            let mut rec = Record::new("revoked");
            rec.revoke_effect = Some(effect);
            (
                a,
                vec![Action::Record(rec), Action::Notify(Notice::Revoked)],
            )
        }
        RevokeAnswer::Retry(note) => {
            let a = Attempt {
                revoke_tries: a.revoke_tries.saturating_add(1),
                ..a
            };
            if a.background_revoke {
                return retry_in_background(a, note, c, t);
            }
            if a.revoke_tries >= t.revoke_max_attempts {
                return revoke_gave_up(a, note, c, t);
            }
            (
                a,
                vec![
                    Action::Record(Record::new("revoke_retry").note(note)),
                    Action::Schedule {
                        call: Call::Revoke,
                        after: t
                            .revoke_interval
                            .max(t.min_revoke_delay.saturating_sub(c.since_sent)),
                    },
                ],
            )
        }
        RevokeAnswer::NotFound(note) => not_found(a, note, c, t),
        RevokeAnswer::Refused(note) => give_up(
            Attempt {
                revoke_tries: a.revoke_tries.saturating_add(1),
                ..a
            },
            Record::new("revoke_refused").note(note),
        ),
    }
}

/// `revoke_max_attempts` revokes failed: the POS hears `needs_attention`
/// now, but a gateway that could not be reached (or kept asking to retry)
/// may take the revoke later, so tillpay goes on revoking in the
/// background, more slowly, until [`REVOKE_LIFETIME`] (payment-rules.md §12).
fn revoke_gave_up(a: Attempt, note: GatewayNote, c: Clock, t: &Timing) -> Step {
    let rec = Record::new("revoke_gave_up").note(note);
    if c.since_sent >= REVOKE_LIFETIME {
        return attention(a, rec);
    }
    let (a, mut actions) = attention(
        Attempt {
            background_revoke: true,
            ..a
        },
        rec,
    );
    actions.push(Action::Schedule {
        call: Call::Revoke,
        after: background_interval(a.revoke_tries, c, t),
    });
    (a, actions)
}

/// A background revoke that must be tried again: kept in the attempt's
/// history, and tried again later, until [`REVOKE_LIFETIME`].
fn retry_in_background(a: Attempt, note: GatewayNote, c: Clock, t: &Timing) -> Step {
    if c.since_sent >= REVOKE_LIFETIME {
        return give_up(a, Record::new("revoke_stopped").note(note));
    }
    let mut rec = Record::new("revoke_retry").note(note);
    rec.history_only = true;
    (
        a,
        vec![
            Action::Record(rec),
            Action::Schedule {
                call: Call::Revoke,
                after: background_interval(a.revoke_tries, c, t),
            },
        ],
    )
}

/// The wait before the background revoke after `tries`: `revoke_interval`,
/// doubling with each try past the bound, at most
/// [`BACKGROUND_REVOKE_MAX_INTERVAL`], and never within WeChat's 15 s.
fn background_interval(tries: u32, c: Clock, t: &Timing) -> Duration {
    let past = tries.saturating_sub(t.revoke_max_attempts).min(16);
    t.revoke_interval
        .saturating_mul(1 << past)
        .min(BACKGROUND_REVOKE_MAX_INTERVAL)
        .max(t.min_revoke_delay.saturating_sub(c.since_sent))
}

/// A restart found the attempt revoking in the background: revoke now
/// (WeChat's 15 s permitting), unless its time is up.
fn resume_background(a: Attempt, c: Clock, t: &Timing) -> Step {
    if c.since_sent >= REVOKE_LIFETIME {
        return give_up(
            a,
            Record::new("revoke_stopped").note(GatewayNote::new(
                "REVOKE_LIFETIME_PASSED",
                "tillpay stopped revoking this attempt 24 hours after its pay request; \
                 check the order in the merchant portal",
            )),
        );
    }
    (
        a,
        vec![
            Action::Record(Record::new("resumed")),
            Action::Schedule {
                call: Call::Revoke,
                after: t.min_revoke_delay.saturating_sub(c.since_sent),
            },
        ],
    )
}

/// The revoke found no order under the number. Until the pay window has
/// passed, a pay request still on its way could land: ask again at its end,
/// without counting a failed try. After it, nothing can be taken any more,
/// and the sale ends with no money moved — unless an answer showed it paid,
/// which an operator must untangle (payment-rules.md §12).
fn not_found(a: Attempt, note: GatewayNote, c: Clock, t: &Timing) -> Step {
    if a.seen_paid {
        return give_up(
            Attempt {
                revoke_tries: a.revoke_tries.saturating_add(1),
                ..a
            },
            Record::new("revoke_refused").note(note),
        );
    }
    if c.since_sent < PAY_WINDOW {
        let wait = (PAY_WINDOW - c.since_sent).max(t.revoke_interval);
        return (
            a,
            vec![
                Action::Record(Record::new("revoke_not_found_yet").note(note)),
                Action::Schedule {
                    call: Call::Revoke,
                    after: wait,
                },
            ],
        );
    }
    let a = Attempt {
        phase: Phase::Revoked,
        background_revoke: false,
        ..a
    };
    let mut rec = Record::new("revoke_not_found").note(note);
    rec.revoke_effect = Some(RevokeEffect::Closed);
    (
        a,
        vec![Action::Record(rec), Action::Notify(Notice::Revoked)],
    )
}

fn paid(a: Attempt, info: PaidInfo, c: Clock, t: &Timing) -> Step {
    let a = Attempt {
        seen_paid: true,
        ..a
    };
    if a.cancel_requested {
        // The cashier cancelled the sale: the money goes back (payment-rules.md §10).
        // Keep the transaction id: reconciliation and operators need it.
        let (a, mut actions) = start_revoke(a, c, t);
        if let Some(Action::Record(r)) = actions.first_mut() {
            r.paid = Some(info);
        }
        return (a, actions);
    }
    let mut rec = Record::new("paid");
    rec.paid = Some(info);
    (
        Attempt {
            phase: Phase::Paid,
            ..a
        },
        vec![Action::Record(rec), Action::Notify(Notice::Paid)],
    )
}

/// An operator's verdict ([`Event::OperatorResolved`]): only an attempt
/// that needs attention takes one. Needs no clock or timing.
pub fn resolve(a: Attempt, verdict: Verdict, note: GatewayNote) -> Step {
    if a.phase != Phase::NeedsAttention {
        return (a, Vec::new());
    }
    let mut rec = Record::new("operator_resolved").note(note);
    let (phase, notice) = match verdict {
        Verdict::Paid(info) => {
            rec.paid = Some(info);
            (Phase::Paid, Notice::Paid)
        }
        Verdict::Unpaid => (Phase::Failed, Notice::Failed),
    };
    // The verdict settles it: any background revoke stops.
    (
        Attempt {
            phase,
            background_revoke: false,
            ..a
        },
        vec![Action::Record(rec), Action::Notify(notice)],
    )
}

/// The trade under this attempt's `out_trade_no` is paid, but it is not
/// this sale's payment. Either the gateway booked it wrongly, or the
/// `out_trade_no` is another sale's (two tills with one till id, a journal
/// that was lost). Calling it "paid" would be wrong. A revoke could refund
/// a stranger's sale. So no further call is made: an operator checks it in
/// the merchant portal.
fn not_this_sale(a: Attempt, info: PaidInfo, why: GatewayNote) -> Step {
    let mut rec = Record::new("not_this_sale").note(why);
    rec.paid = Some(info);
    attention(
        Attempt {
            seen_paid: true,
            ..a
        },
        rec,
    )
}

/// Why a payment of another amount is not the sale's.
pub fn amount_mismatch(info: &PaidInfo, expected: Fen) -> GatewayNote {
    let booked = info
        .amount
        .map_or_else(|| "another amount".to_string(), |f| format!("{} fen", f.0));
    GatewayNote::new(
        "AMOUNT_MISMATCH",
        format!(
            "the gateway reports {booked} paid under this sale's order number, for a {} fen \
             sale: not this sale's payment; nothing was revoked; check the order in the \
             merchant portal",
            expected.0
        ),
    )
}

/// Why a payment made before the attempt was sent is not the sale's.
pub fn order_number_collision(info: &PaidInfo) -> GatewayNote {
    GatewayNote::new(
        "OUT_TRADE_NO_COLLISION",
        format!(
            "the gateway reports this sale's order number already paid at {}, before this \
             attempt was sent: another sale's payment (two tills with one till id? a journal \
             that was replaced?); nothing was revoked; check the order in the merchant portal",
            info.paid_at.as_deref().unwrap_or("an earlier time")
        ),
    )
}

/// An answer that came while the attempt is revoking (in flight when a
/// cancel moved it there, or the query after a restart). A payment is
/// journaled with its transaction id; the revoke goes on.
fn revoke_after_stray_answer(a: Attempt, paid: Option<PaidInfo>, c: Clock, t: &Timing) -> Step {
    let a = Attempt {
        seen_paid: a.seen_paid || paid.is_some(),
        ..a
    };
    let mut actions = Vec::new();
    if let Some(info) = paid {
        let mut rec = Record::new("paid_while_revoking");
        rec.paid = Some(info);
        actions.push(Action::Record(rec));
    }
    actions.push(Action::Schedule {
        call: Call::Revoke,
        after: t.min_revoke_delay.saturating_sub(c.since_sent),
    });
    (a, actions)
}

fn fail(a: Attempt, rec: Record) -> Step {
    (
        Attempt {
            phase: Phase::Failed,
            ..a
        },
        vec![Action::Record(rec), Action::Notify(Notice::Failed)],
    )
}

/// No further revoke can help: the attempt needs an operator. One that
/// already does (revoking in the background) stops revoking, and the POS,
/// which heard `needs_attention` then, is not told again.
fn give_up(a: Attempt, rec: Record) -> Step {
    if a.phase == Phase::NeedsAttention {
        let a = Attempt {
            background_revoke: false,
            ..a
        };
        return (a, vec![Action::Record(rec)]);
    }
    attention(a, rec)
}

fn attention(a: Attempt, rec: Record) -> Step {
    (
        Attempt {
            phase: Phase::NeedsAttention,
            ..a
        },
        vec![Action::Record(rec), Action::Notify(Notice::NeedsAttention)],
    )
}

/// Poll again, or revoke when the deadline (or a cashier cancel past the
/// minimum delay) says so (payment-rules.md §8, 10, 11).
fn keep_polling(a: Attempt, c: Clock, t: &Timing) -> Step {
    let revoke_due = if a.cancel_requested {
        c.since_sent >= t.min_revoke_delay
    } else {
        c.since_pay >= t.pay_timeout
    };
    if revoke_due {
        return start_revoke(a, c, t);
    }
    let left = if a.cancel_requested {
        t.min_revoke_delay.saturating_sub(c.since_sent)
    } else {
        t.pay_timeout.saturating_sub(c.since_pay)
    };
    (
        a,
        vec![Action::Schedule {
            call: Call::Query,
            after: t.poll_interval.min(left),
        }],
    )
}

fn start_revoke(a: Attempt, c: Clock, t: &Timing) -> Step {
    let a = Attempt {
        phase: Phase::Revoking,
        ..a
    };
    (
        a,
        vec![
            Action::Record(Record::new("revoking")),
            Action::Notify(Notice::Revoking),
            Action::Schedule {
                call: Call::Revoke,
                after: t.min_revoke_delay.saturating_sub(c.since_sent),
            },
        ],
    )
}
