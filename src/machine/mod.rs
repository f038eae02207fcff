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

mod attempt;
pub mod refund;
pub mod sale;

pub use attempt::{amount_mismatch, order_number_collision, resolve, step};

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

/// How long after a pay request was sent it may still take money. Payment
/// codes are good for about a minute (gateway-facts.md §W12, §A10); twice
/// that covers a request delayed on its way. After it, an order the gateway
/// does not know will never be paid (payment-rules.md §12).
pub const PAY_WINDOW: Duration = Duration::from_secs(120);

/// How long after a pay request tillpay keeps revoking in the background.
/// A copy of Alipay's domestic docs takes a cancel within 24 hours of the
/// trade; WeChat takes a reverse within 7 days (gateway-facts.md §A6, §W7):
/// 24 hours fits both. A refusal after it ends the background revokes.
pub const REVOKE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The longest wait between background revokes: once the gateway is back,
/// a sale that needed an operator settles within this.
pub const BACKGROUND_REVOKE_MAX_INTERVAL: Duration = Duration::from_secs(60);

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
    /// Needs an operator, but tillpay keeps revoking: the bound of
    /// `revoke_max_attempts` ended the sale for the POS while the gateway
    /// could not be reached or kept asking to retry, and a revoke that
    /// succeeds later still gives the money back (payment-rules.md §12).
    pub background_revoke: bool,
}

impl Attempt {
    pub fn submitting() -> Attempt {
        Attempt {
            phase: Phase::Submitting,
            revoke_tries: 0,
            cancel_requested: false,
            seen_paid: false,
            used_number: false,
            background_revoke: false,
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

#[cfg(test)]
mod tests;
