//! The state machine of one refund: pure, no I/O. A refund is journaled
//! before it is sent, keyed by its refund number (the gateway's idempotency
//! key), and confirmed by refund query in the background, at growing
//! intervals, for as long as a refund can take to land (payment-rules.md §17). Its
//! status never moves backwards: `refunded` and `failed` are final, and a
//! refund seen processing never shows pending again.

use std::time::Duration;

use crate::gateway::{GatewayNote, RefundAnswer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    /// Journaled; the gateway has not said anything yet.
    Pending,
    /// Accepted, or asked and not settled yet: confirming.
    Processing,
    Refunded,
    Failed,
}

impl RefundStatus {
    pub fn is_final(self) -> bool {
        matches!(self, RefundStatus::Refunded | RefundStatus::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Refunded => "refunded",
            RefundStatus::Processing => "processing",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RefundStatus> {
        [
            RefundStatus::Pending,
            RefundStatus::Processing,
            RefundStatus::Refunded,
            RefundStatus::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A refund's state as the journal keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refund {
    pub status: RefundStatus,
    /// The gateway accepted this refund (WeChat "申请接收成功", or a query
    /// that listed it): a later "not found" means "not landed yet", never
    /// "never made", so it is not sent again.
    pub accepted: bool,
    /// Gateway calls made since the refund (or the daemon) started: the
    /// step of the back-off.
    pub tries: u32,
}

impl Refund {
    pub fn pending() -> Refund {
        Refund {
            status: RefundStatus::Pending,
            accepted: false,
            tries: 0,
        }
    }
}

/// The timing of refund confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundTiming {
    /// The first query after an accepted or unknown answer; each next one
    /// waits twice as long, up to `max_interval`.
    pub first_query: Duration,
    pub max_interval: Duration,
    /// After a transient refusal (frequency limit, WeChat's one minute
    /// between refunds of one order), send the same refund again after this.
    pub later: Duration,
    /// How long a refund may take to land. WeChat: refunds to the balance
    /// within about 20 minutes, to a bank card within 3 working days; after
    /// this the refund is left to an operator.
    pub window: Duration,
}

impl RefundTiming {
    pub fn standard(first_query: Duration) -> RefundTiming {
        RefundTiming {
            first_query,
            max_interval: Duration::from_secs(3600),
            later: Duration::from_secs(60),
            window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundEvent {
    /// Just journaled: send it.
    Requested,
    /// The daemon restarted with this refund unsettled.
    Resumed,
    /// The answer to the refund call.
    Answered(RefundAnswer),
    /// The answer to a refund query.
    Queried(RefundAnswer),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundCall {
    /// The refund request itself, under the same refund number.
    Send,
    Query,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundAction {
    /// Commit the refund's new state to the journal, with what the gateway
    /// said; nothing after it runs if this fails.
    Record {
        kind: &'static str,
        note: Option<GatewayNote>,
        refund_id: Option<String>,
    },
    /// The POS that asked for the refund gets its status now.
    Reply,
    /// The refund ended (refunded or failed): `refund.event`.
    Notify,
    Schedule {
        call: RefundCall,
        after: Duration,
    },
}

pub type RefundStep = (Refund, Vec<RefundAction>);

fn record(kind: &'static str, note: Option<GatewayNote>) -> RefundAction {
    RefundAction::Record {
        kind,
        note,
        refund_id: None,
    }
}

/// The next state and actions of `r` on `ev`; `age` is the time since the
/// refund was journaled (wall clock across restarts).
pub fn step(r: Refund, ev: RefundEvent, age: Duration, t: &RefundTiming) -> RefundStep {
    if r.status.is_final() {
        return (r, Vec::new());
    }
    match ev {
        RefundEvent::Requested => (r, vec![schedule(RefundCall::Send, Duration::ZERO)]),
        // Never answered: send again (the refund number makes it safe).
        // Answered but unsettled: ask.
        RefundEvent::Resumed => {
            let r = Refund { tries: 0, ..r };
            let call = match r.status {
                RefundStatus::Pending => RefundCall::Send,
                _ => RefundCall::Query,
            };
            (
                r,
                vec![
                    record("refund_resumed", None),
                    schedule(call, Duration::ZERO),
                ],
            )
        }
        RefundEvent::Answered(ans) => on_answer(r, ans, age, t),
        RefundEvent::Queried(ans) => on_query(r, ans, age, t),
    }
}

fn on_answer(r: Refund, ans: RefundAnswer, age: Duration, t: &RefundTiming) -> RefundStep {
    let r = Refund {
        tries: r.tries.saturating_add(1),
        ..r
    };
    let (r, mut actions) = match ans {
        RefundAnswer::Refunded { refund_id } => refunded(r, refund_id),
        RefundAnswer::Failed(note) => failed(r, note),
        RefundAnswer::Processing(note) => {
            let r = Refund {
                status: RefundStatus::Processing,
                accepted: true,
                ..r
            };
            schedule_or_stop(
                r,
                Some(record("refund_accepted", Some(note))),
                RefundCall::Query,
                age,
                t,
            )
        }
        // The refund may or may not have been made: ask.
        RefundAnswer::Unknown(note) | RefundAnswer::NotFound(note) => {
            let r = Refund {
                status: RefundStatus::Processing,
                ..r
            };
            schedule_or_stop(
                r,
                Some(record("refund_unknown", Some(note))),
                RefundCall::Query,
                age,
                t,
            )
        }
        // A transient refusal: the same refund again, later.
        RefundAnswer::Later(note) => {
            let (r, mut actions) = schedule_or_stop(
                r,
                Some(record("refund_later", Some(note))),
                RefundCall::Send,
                age,
                t,
            );
            for a in &mut actions {
                if let RefundAction::Schedule { after, .. } = a {
                    *after = (*after).max(t.later);
                }
            }
            (r, actions)
        }
    };
    // The POS that asked hears the first answer, whatever it is.
    actions.push(RefundAction::Reply);
    (r, actions)
}

fn on_query(r: Refund, ans: RefundAnswer, age: Duration, t: &RefundTiming) -> RefundStep {
    let r = Refund {
        tries: r.tries.saturating_add(1),
        ..r
    };
    match ans {
        RefundAnswer::Refunded { refund_id } => refunded(r, refund_id),
        // REFUNDCLOSE, CHANGE: the gateway gave up on it.
        RefundAnswer::Failed(note) => failed(r, note),
        RefundAnswer::Processing(note) => {
            let newly = !r.accepted;
            let r = Refund {
                status: RefundStatus::Processing,
                accepted: true,
                ..r
            };
            let rec = newly.then(|| record("refund_accepted", Some(note)));
            schedule_or_stop(r, rec, RefundCall::Query, age, t)
        }
        // Not there: a refund the gateway never accepted did not arrive,
        // so send it again under the same number; an accepted one has not
        // landed yet.
        RefundAnswer::NotFound(note) => {
            let call = if r.accepted {
                RefundCall::Query
            } else {
                RefundCall::Send
            };
            schedule_or_stop(
                r,
                Some(record("refund_not_found", Some(note))),
                call,
                age,
                t,
            )
        }
        RefundAnswer::Unknown(note) | RefundAnswer::Later(note) => schedule_or_stop(
            r,
            Some(record("refund_query_unknown", Some(note))),
            RefundCall::Query,
            age,
            t,
        ),
    }
}

fn refunded(r: Refund, refund_id: Option<String>) -> RefundStep {
    (
        Refund {
            status: RefundStatus::Refunded,
            accepted: true,
            ..r
        },
        vec![
            RefundAction::Record {
                kind: "refund_refunded",
                note: None,
                refund_id,
            },
            RefundAction::Notify,
        ],
    )
}

fn failed(r: Refund, note: GatewayNote) -> RefundStep {
    (
        Refund {
            status: RefundStatus::Failed,
            ..r
        },
        vec![record("refund_failed", Some(note)), RefundAction::Notify],
    )
}

/// The next call after the back-off, or, past the window, none: the
/// refund stays processing and an operator settles it.
fn schedule_or_stop(
    r: Refund,
    rec: Option<RefundAction>,
    call: RefundCall,
    age: Duration,
    t: &RefundTiming,
) -> RefundStep {
    let mut actions: Vec<RefundAction> = rec.into_iter().collect();
    let after = backoff(r.tries, t);
    if age + after > t.window {
        actions.push(record(
            "refund_unconfirmed",
            Some(GatewayNote::new(
                "REFUND_UNCONFIRMED",
                "the gateway has not confirmed this refund within the time a refund may \
                 take; check it in the merchant portal",
            )),
        ));
        return (r, actions);
    }
    actions.push(schedule(call, after));
    (r, actions)
}

/// `first_query`, doubled for each call made, capped.
pub fn backoff(tries: u32, t: &RefundTiming) -> Duration {
    let doublings = tries.saturating_sub(1).min(20);
    t.first_query
        .saturating_mul(1 << doublings)
        .min(t.max_interval)
}

fn schedule(call: RefundCall, after: Duration) -> RefundAction {
    RefundAction::Schedule { call, after }
}

#[cfg(test)]
mod tests;
