//! The payment state machine of one attempt: pure, no I/O, no clock reads.
//! `step(attempt, event, clock, timing, facts)` gives the next attempt state
//! and the actions to carry out, in order: journal records first, then POS
//! notices, then at most one scheduled gateway call. It is the only code
//! that changes an attempt's phase: gateway answers, cashier cancels,
//! recovery and operator resolutions all come in as events.
//!
//! Every timer reads the monotonic [`Clock`] the caller passes (payment-rules.md §8).
//! The sale machine ([`sale`]) and the refund machine ([`refund`]) sit
//! beside this one.

pub mod refund;
pub mod sale;

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

    /// Every phase, in flight first.
    pub const ALL: [Phase; 7] = [
        Phase::Submitting,
        Phase::Paying,
        Phase::Revoking,
        Phase::Paid,
        Phase::Failed,
        Phase::Revoked,
        Phase::NeedsAttention,
    ];

    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The timing rules, from `[payment]` and the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub poll_interval: Duration,
    pub pay_timeout: Duration,
    pub revoke_interval: Duration,
    pub revoke_max_attempts: u32,
    /// WeChat: no reverse sooner than 15 s after micropay (payment-rules.md §11).
    pub min_revoke_delay: Duration,
}

/// The state of one attempt, as the journal keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub phase: Phase,
    /// Revokes that failed so far (payment-rules.md §12).
    pub revoke_tries: u32,
    /// The cashier asked to cancel this sale (payment-rules.md §10).
    pub cancel_requested: bool,
    /// Some answer said the order was paid: a revoke that follows refunds.
    pub seen_paid: bool,
    /// The one pay request was answered "this order number is already paid
    /// / used" (WeChat ORDERPAID, OUT_TRADE_NO_USED; Alipay
    /// ACQ.TRADE_HAS_SUCCESS). tillpay sends a pay request only once, so
    /// that names an earlier trade: the query decides (payment-rules.md §5), but a
    /// payment it shows from well before this attempt is another sale's.
    /// Journaled, so a restart in between still sees it.
    pub used_number: bool,
}

impl Attempt {
    pub fn submitting() -> Attempt {
        Attempt {
            phase: Phase::Submitting,
            revoke_tries: 0,
            cancel_requested: false,
            seen_paid: false,
            used_number: false,
        }
    }
}

/// What the machine knows of an attempt beyond its state: fixed when the
/// attempt is journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The sale's amount: a paid answer for another one is not this sale's.
    pub amount: Fen,
    /// Wall-clock ms when the attempt was journaled, just before its pay
    /// request: a payment booked well before it is not this attempt's.
    pub submitted_at_ms: i64,
}

/// The two monotonic clocks a step reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Since the pay call started: `pay_timeout` counts from here.
    pub since_pay: Duration,
    /// Since the pay request had surely reached the gateway: WeChat's 15 s
    /// before a reverse count from here (payment-rules.md §11). The caller measures it
    /// from the pay call's return, which is never before the request
    /// arrived, however long address lookup and connect took; zero while
    /// the pay call is in flight.
    pub since_sent: Duration,
}

impl Clock {
    /// Both clocks at `d` (a pay request that was answered at once).
    pub fn at(d: Duration) -> Clock {
        Clock {
            since_pay: d,
            since_sent: d,
        }
    }
}

/// An operator's verdict on an attempt that needs attention, after checking
/// the order in the merchant portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Paid: the payment as the gateway or the portal names it.
    Paid(PaidInfo),
    /// Not paid, or the money went back: the sale may be charged again.
    Unpaid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PayAnswered(PayAnswer),
    QueryAnswered(QueryAnswer),
    RevokeAnswered(RevokeAnswer),
    CancelRequested,
    /// The daemon restarted with this attempt unfinished (payment-rules.md §15).
    Resumed,
    /// The daemon restarted with this attempt unfinished, but its provider
    /// is no longer configured: nothing can ask the gateway.
    ProviderMissing,
    /// An operator settled an attempt that needs attention; `note` says who
    /// and why.
    OperatorResolved {
        verdict: Verdict,
        note: GatewayNote,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Query,
    Revoke,
}

/// What the POS is told (docs/pos-protocol.md `payment.event`).
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
    /// Logged at error level: the merchant must fix something (payment-rules.md §6).
    pub config_error: bool,
    /// The note goes to the attempt's history only, not to its error (what
    /// a query said while polling).
    pub history_only: bool,
}

impl Record {
    pub fn new(kind: &'static str) -> Record {
        Record {
            kind,
            note: None,
            paid: None,
            revoke_effect: None,
            config_error: false,
            history_only: false,
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
pub fn step(a: Attempt, ev: Event, c: Clock, t: &Timing, f: &Facts) -> Step {
    if let Event::OperatorResolved { verdict, note } = ev {
        return resolve(a, verdict, note);
    }
    if a.phase.is_final() {
        return (a, Vec::new());
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
        (_, Event::ProviderMissing) => {
            let mut rec = Record::new("resume_impossible").note(GatewayNote::new(
                "PROVIDER_NOT_CONFIGURED",
                "this attempt's provider is no longer configured: nothing can ask the gateway; \
                 check the order in the merchant portal",
            ));
            rec.config_error = true;
            attention(a, rec)
        }
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

fn on_pay(a: Attempt, ans: PayAnswer, c: Clock, t: &Timing) -> Step {
    match ans {
        PayAnswer::Paid(info) => paid(a, info, c, t),
        PayAnswer::Failed { note, config_error } => {
            let mut rec = Record::new("pay_failed").note(note);
            rec.config_error = config_error;
            fail(a, rec)
        }
        PayAnswer::NotSent(note) => fail(a, Record::new("pay_not_sent").note(note)),
        PayAnswer::Unknown { note, user_paying } => {
            let a = Attempt {
                phase: Phase::Paying,
                used_number: a.used_number || note.says_order_number_used(),
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
    }
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
                            .max(t.min_revoke_delay.saturating_sub(c.since_sent)),
                    },
                ],
            )
        }
        RevokeAnswer::Refused(note) => attention(
            Attempt {
                revoke_tries: a.revoke_tries.saturating_add(1),
                ..a
            },
            Record::new("revoke_refused").note(note),
        ),
    }
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
    (
        Attempt { phase, ..a },
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

#[cfg(test)]
mod tests;
