//! The payment state machine of one attempt: pure, no I/O, no clock reads.
//! `step(attempt, event, elapsed, timing)` gives the next attempt state and
//! the actions to carry out, in order: journal records first, then POS
//! notices, then at most one scheduled gateway call.
//!
//! `elapsed` is the time since the pay request was sent (POLICY 8: every
//! timer counts from the pay request, on the monotonic clock).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::Fen;
use crate::gateway::{GatewayNote, PaidInfo, PayAnswer, QueryAnswer, RevokeAnswer, RevokeEffect};

/// Where an attempt stands. The first three are in flight; the rest final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Journaled; the pay request is (about to be) on its way.
    Submitting,
    /// The answer was unknown or the customer is confirming: polling.
    Paying,
    /// Revoking (reverse / cancel), retrying while the gateway asks.
    Revoking,
    Paid,
    Failed,
    Revoked,
    NeedsAttention,
}

impl Phase {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Phase::Paid | Phase::Failed | Phase::Revoked | Phase::NeedsAttention
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Submitting => "submitting",
            Phase::Paying => "paying",
            Phase::Revoking => "revoking",
            Phase::Paid => "paid",
            Phase::Failed => "failed",
            Phase::Revoked => "revoked",
            Phase::NeedsAttention => "needs_attention",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        [
            Phase::Submitting,
            Phase::Paying,
            Phase::Revoking,
            Phase::Paid,
            Phase::Failed,
            Phase::Revoked,
            Phase::NeedsAttention,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// The timing rules, from `[payment]` and the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub poll_interval: Duration,
    pub pay_timeout: Duration,
    pub revoke_interval: Duration,
    pub revoke_max_attempts: u32,
    /// WeChat: no reverse sooner than 15 s after micropay (POLICY 11).
    pub min_revoke_delay: Duration,
}

/// The state of one attempt, as the journal keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub phase: Phase,
    /// Revokes that failed so far (POLICY 12).
    pub revoke_tries: u32,
    /// The cashier asked to cancel this sale (POLICY 10).
    pub cancel_requested: bool,
    /// Some answer said the order was paid: a revoke that follows refunds.
    pub seen_paid: bool,
}

impl Attempt {
    pub fn submitting() -> Attempt {
        Attempt {
            phase: Phase::Submitting,
            revoke_tries: 0,
            cancel_requested: false,
            seen_paid: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PayAnswered(PayAnswer),
    QueryAnswered(QueryAnswer),
    RevokeAnswered(RevokeAnswer),
    CancelRequested,
    /// The daemon restarted with this attempt unfinished (POLICY 15).
    Resumed,
    /// A verified pay or query answer said paid, but the payment is not
    /// this sale's: another amount than the attempt's, or an old trade
    /// under the same `out_trade_no` ([`amount_mismatch`],
    /// [`order_number_collision`] say why).
    NotThisSale {
        info: PaidInfo,
        why: GatewayNote,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Query,
    Revoke,
}

/// What the POS is told (CONTRACT §3 `payment.event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    UserPaying,
    Paid,
    Failed,
    Revoking,
    Revoked,
    NeedsAttention,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::UserPaying => "user_paying",
            Notice::Paid => "paid",
            Notice::Failed => "failed",
            Notice::Revoking => "revoking",
            Notice::Revoked => "revoked",
            Notice::NeedsAttention => "needs_attention",
        }
    }
}

/// A journal write: the attempt's new state plus what the answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: &'static str,
    pub note: Option<GatewayNote>,
    pub paid: Option<PaidInfo>,
    pub revoke_effect: Option<RevokeEffect>,
    /// Logged at error level: the merchant must fix something (POLICY 6).
    pub config_error: bool,
}

impl Record {
    fn new(kind: &'static str) -> Record {
        Record {
            kind,
            note: None,
            paid: None,
            revoke_effect: None,
            config_error: false,
        }
    }
    fn note(mut self, note: GatewayNote) -> Record {
        self.note = Some(note);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Commit to the journal; nothing after it runs if this fails.
    Record(Record),
    Notify(Notice),
    /// The next gateway call, `after` from now. Replaces any pending one.
    Schedule {
        call: Call,
        after: Duration,
    },
}

pub type Step = (Attempt, Vec<Action>);

/// The next state and actions of `a` on `ev`.
pub fn step(a: Attempt, ev: Event, elapsed: Duration, t: &Timing) -> Step {
    if a.phase.is_final() {
        return (a, Vec::new());
    }
    match (a.phase, ev) {
        (Phase::Submitting, Event::PayAnswered(ans)) => on_pay(a, ans, elapsed, t),
        (Phase::Paying, Event::QueryAnswered(ans)) => on_query(a, ans, elapsed, t),
        (Phase::Revoking, Event::RevokeAnswered(ans)) => on_revoke(a, ans, elapsed, t),
        (Phase::Submitting | Phase::Paying, Event::CancelRequested) if !a.cancel_requested => {
            let a = Attempt {
                cancel_requested: true,
                ..a
            };
            let mut actions = vec![Action::Record(Record::new("cancel_requested"))];
            if a.phase == Phase::Paying {
                // While the pay call is in flight there is nothing to
                // reschedule: its answer decides (and sees the cancel).
                let (a2, more) = keep_polling(a, elapsed, t);
                actions.extend(more);
                return (a2, actions);
            }
            (a, actions)
        }
        (Phase::Submitting | Phase::Paying, Event::Resumed) => {
            // The pay request may or may not have left before the crash:
            // the answer is unknown. Past the deadline, revoke now
            // (POLICY 15); before it, ask the gateway now.
            let a = Attempt {
                phase: Phase::Paying,
                ..a
            };
            let mut actions = vec![Action::Record(Record::new("resumed"))];
            let past =
                elapsed >= t.pay_timeout || (a.cancel_requested && elapsed >= t.min_revoke_delay);
            if past {
                let (a2, more) = start_revoke(a, elapsed, t);
                actions.extend(more);
                return (a2, actions);
            }
            actions.push(Action::Schedule {
                call: Call::Query,
                after: Duration::ZERO,
            });
            (a, actions)
        }
        (Phase::Revoking, Event::Resumed) => (
            a,
            vec![
                Action::Record(Record::new("resumed")),
                Action::Schedule {
                    call: Call::Revoke,
                    // Even after a restart (or a clock that went back).
                    after: t.min_revoke_delay.saturating_sub(elapsed),
                },
            ],
        ),
        // A pay or query answer that was in flight when a cancel moved the
        // attempt to revoking: the revoke decides (POLICY 12), but it must
        // still be sent, and a paid answer means the revoke will refund.
        (Phase::Revoking, Event::QueryAnswered(ans)) => {
            let paid = match ans {
                QueryAnswer::Paid(info) => Some(info),
                _ => None,
            };
            revoke_after_stray_answer(a, paid, elapsed, t)
        }
        (Phase::Revoking, Event::PayAnswered(ans)) => {
            let paid = match ans {
                PayAnswer::Paid(info) => Some(info),
                _ => None,
            };
            revoke_after_stray_answer(a, paid, elapsed, t)
        }
        (Phase::Submitting | Phase::Paying | Phase::Revoking, Event::NotThisSale { info, why }) => {
            not_this_sale(a, info, why)
        }
        // Anything else (a duplicate cancel, a stray answer) changes nothing.
        _ => (a, Vec::new()),
    }
}

fn on_pay(a: Attempt, ans: PayAnswer, elapsed: Duration, t: &Timing) -> Step {
    match ans {
        PayAnswer::Paid(info) => paid(a, info, elapsed, t),
        PayAnswer::Failed { note, config_error } => {
            let mut rec = Record::new("pay_failed").note(note);
            rec.config_error = config_error;
            fail(a, rec)
        }
        PayAnswer::NotSent(note) => fail(a, Record::new("pay_not_sent").note(note)),
        PayAnswer::Unknown { note, user_paying } => {
            let a = Attempt {
                phase: Phase::Paying,
                ..a
            };
            let mut actions = vec![Action::Record(Record::new("pay_unknown").note(note))];
            if user_paying {
                actions.push(Action::Notify(Notice::UserPaying));
            }
            let (a, more) = keep_polling(a, elapsed, t);
            actions.extend(more);
            (a, actions)
        }
    }
}

fn on_query(a: Attempt, ans: QueryAnswer, elapsed: Duration, t: &Timing) -> Step {
    match ans {
        QueryAnswer::Paid(info) => paid(a, info, elapsed, t),
        QueryAnswer::Pending { note, user_paying } => {
            let mut actions = Vec::new();
            if user_paying {
                actions.push(Action::Notify(Notice::UserPaying));
            }
            let _ = note;
            let (a, more) = keep_polling(a, elapsed, t);
            actions.extend(more);
            (a, actions)
        }
        QueryAnswer::NotPaid(note) => fail(a, Record::new("query_not_paid").note(note)),
        // PAYERROR: not paid, but revoke anyway to close the loop (POLICY 9).
        QueryAnswer::PayError(note) => {
            let (a, mut actions) = start_revoke(a, elapsed, t);
            if let Some(Action::Record(r)) = actions.first_mut() {
                r.note = Some(note);
            }
            (a, actions)
        }
    }
}

fn on_revoke(a: Attempt, ans: RevokeAnswer, elapsed: Duration, t: &Timing) -> Step {
    match ans {
        RevokeAnswer::Revoked(effect) => {
            // WeChat's reverse does not say whether money moved; if an
            // answer showed the order paid, the reverse refunded it.
            let effect = match effect {
                RevokeEffect::Unstated if a.seen_paid => RevokeEffect::Refunded,
                e => e,
            };
            let a = Attempt {
                phase: Phase::Revoked,
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
                revoke_tries: a.revoke_tries + 1,
                ..a
            };
            if a.revoke_tries >= t.revoke_max_attempts {
                return attention(a, Record::new("revoke_gave_up").note(note));
            }
            (
                a,
                vec![
                    Action::Record(Record::new("revoke_retry").note(note)),
                    Action::Schedule {
                        call: Call::Revoke,
                        after: t
                            .revoke_interval
                            .max(t.min_revoke_delay.saturating_sub(elapsed)),
                    },
                ],
            )
        }
        RevokeAnswer::Refused(note) => attention(
            Attempt {
                revoke_tries: a.revoke_tries + 1,
                ..a
            },
            Record::new("revoke_refused").note(note),
        ),
    }
}

fn paid(a: Attempt, info: PaidInfo, elapsed: Duration, t: &Timing) -> Step {
    let a = Attempt {
        seen_paid: true,
        ..a
    };
    if a.cancel_requested {
        // The cashier cancelled the sale: the money goes back (POLICY 10).
        // Keep the transaction id: reconciliation and operators need it.
        let (a, mut actions) = start_revoke(a, elapsed, t);
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

/// An answer that was in flight when the attempt moved to revoking. A
/// payment is journaled with its transaction id; the revoke goes on.
fn revoke_after_stray_answer(
    a: Attempt,
    paid: Option<PaidInfo>,
    elapsed: Duration,
    t: &Timing,
) -> Step {
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
        after: t.min_revoke_delay.saturating_sub(elapsed),
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
/// minimum delay) says so (POLICY 8, 10, 11).
fn keep_polling(a: Attempt, elapsed: Duration, t: &Timing) -> Step {
    let revoke_due = if a.cancel_requested {
        elapsed >= t.min_revoke_delay
    } else {
        elapsed >= t.pay_timeout
    };
    if revoke_due {
        return start_revoke(a, elapsed, t);
    }
    let until = if a.cancel_requested {
        t.min_revoke_delay
    } else {
        t.pay_timeout
    };
    let after = t.poll_interval.min(until.saturating_sub(elapsed));
    (
        a,
        vec![Action::Schedule {
            call: Call::Query,
            after,
        }],
    )
}

fn start_revoke(a: Attempt, elapsed: Duration, t: &Timing) -> Step {
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
                after: t.min_revoke_delay.saturating_sub(elapsed),
            },
        ],
    )
}

#[cfg(test)]
mod tests;
