//! The state machine of one sale (a POS `order_no`): pure, no I/O. It
//! decides what each request on the order does (answered at once, refused,
//! or waiting for the end of the round), when the scanner is held, when an
//! attempt starts, and when the waiting clients are answered. The order's
//! owner task (`engine::order`) is its only caller, so requests on one
//! order are taken one at a time, in the order they arrive (payment-rules.md §18).
//!
//! A round is one charge: from `charge` to the end of its attempt (or to a
//! cancel before any code was taken). A new round starts only when the
//! last one ended unpaid (payment-rules.md §2).

use super::Phase;

/// Where a sale stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SalePhase {
    /// No code is being charged: a new sale, or every attempt so far ended
    /// unpaid, or the last round was cancelled before a scan.
    Open,
    /// A charge holds the scanner and waits for a code.
    WaitingScan,
    /// A code was taken: its attempt is in flight.
    Attempting,
    /// An attempt is in flight in the journal but nothing drives it: the
    /// journal failed under it. Recovery resumes it at the next start.
    Stranded,
    Paid,
    /// An attempt needs an operator: nothing more is charged until one
    /// resolves it.
    NeedsAttention,
}

impl SalePhase {
    /// The phase a sale is in when its owner starts, from its attempts'
    /// phases in the journal (oldest first).
    pub fn from_attempts(phases: &[Phase]) -> SalePhase {
        if phases.contains(&Phase::Paid) {
            SalePhase::Paid
        } else if phases.iter().any(|p| !p.is_final()) {
            SalePhase::Stranded
        } else if phases.contains(&Phase::NeedsAttention) {
            SalePhase::NeedsAttention
        } else {
            SalePhase::Open
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleEvent {
    /// A POS `charge` for this sale.
    Charge {
        /// The request's amount is the sale's.
        amount_matches: bool,
        /// A code was typed in with it.
        typed: bool,
        /// The typed code was sent by an earlier attempt.
        code_used: bool,
        /// No other sale holds the scanner (asked only without a code).
        scanner_free: bool,
    },
    /// A scanned code reached this sale. `code_used`: an earlier attempt
    /// sent it.
    Scanned {
        code_used: bool,
    },
    ScanTimedOut,
    Cancel,
    /// The attempt reached a final phase (or an operator resolved it).
    AttemptEnded(Phase),
    /// The attempt could not be journaled: nothing was sent.
    AttemptNotStarted,
    /// A journal write failed under the running attempt.
    AttemptHalted,
    /// The daemon restarted and resumes the sale's attempt.
    Resumed,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Another sale holds the scanner (1001).
    Busy,
    /// The order exists with another amount (1002).
    AmountConflict,
    /// A charge of this sale is waiting for a scan (1002).
    WaitingScan,
    /// An attempt of this sale is in flight (1002).
    InFlight,
    /// An attempt of this sale needs an operator first (1002).
    NeedsOperator,
    /// The typed code was used before (-32602 naming `auth_code`).
    CodeUsed,
    /// The sale's attempt is stranded by a journal failure: nobody can say
    /// how it ends until the daemon restarts (1007).
    Unresolved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleAction {
    /// Answer the request now with the Payment as it stands.
    AnswerNow,
    Refuse(Refusal),
    /// The request is answered when the round ends. Always the first
    /// action, so that whatever follows can end the round.
    Wait,
    /// Hold the scanner, start the scan timer, tell the POS `waiting_scan`.
    Arm,
    /// Let go of the scanner.
    Disarm,
    /// Journal an attempt for the code, then send it.
    StartAttempt,
    /// Hand the cancel to the attempt machine.
    CancelAttempt,
    /// Journal that the round ended before any code was sent; tell the POS.
    EndUnscanned(Unscanned),
    /// The round ended: every waiting client gets the final Payment.
    AnswerWaiters,
    /// The scan charges nothing; the reason goes to the POS.
    IgnoreScan(&'static str),
}

/// Why a round ended before any code was sent: the Payment's `error`
/// while it stays `cancelled`, so a POS can tell a cashier's cancel from a
/// customer who never showed a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unscanned {
    pub code: &'static str,
    pub message: &'static str,
}

pub const CANCELLED_BY_CASHIER: Unscanned = Unscanned {
    code: "CANCELLED_BY_CASHIER",
    message: "cancelled by the cashier before a code was scanned",
};
pub const SCAN_TIMED_OUT: Unscanned = Unscanned {
    code: "SCAN_TIMED_OUT",
    message: "no code was scanned in time",
};
pub const DAEMON_RESTARTED: Unscanned = Unscanned {
    code: "DAEMON_RESTARTED",
    message: "tillpay restarted while the sale waited for a scan",
};

impl Unscanned {
    /// The reason a journal's code stands for.
    pub fn of_code(code: &str) -> Option<Unscanned> {
        [CANCELLED_BY_CASHIER, SCAN_TIMED_OUT, DAEMON_RESTARTED]
            .into_iter()
            .find(|u| u.code == code)
    }
}
pub const CODE_USED: &str = "this payment code was already used";

/// The next phase and actions of a sale in `p` on `ev`.
pub fn step(p: SalePhase, ev: SaleEvent) -> (SalePhase, Vec<SaleAction>) {
    use SaleAction::*;
    use SalePhase::*;
    match (p, ev) {
        (
            _,
            SaleEvent::Charge {
                amount_matches: false,
                ..
            },
        ) => (p, vec![Refuse(Refusal::AmountConflict)]),
        // Already paid: the same charge again answers with its Payment and
        // charges nothing, whatever code it carries.
        (Paid, SaleEvent::Charge { .. }) => (p, vec![AnswerNow]),
        (WaitingScan, SaleEvent::Charge { .. }) => (p, vec![Refuse(Refusal::WaitingScan)]),
        (Attempting | Stranded, SaleEvent::Charge { .. }) => (p, vec![Refuse(Refusal::InFlight)]),
        (NeedsAttention, SaleEvent::Charge { .. }) => (p, vec![Refuse(Refusal::NeedsOperator)]),
        (
            Open,
            SaleEvent::Charge {
                typed: true,
                code_used: true,
                ..
            },
        ) => (p, vec![Refuse(Refusal::CodeUsed)]),
        (Open, SaleEvent::Charge { typed: true, .. }) => (Attempting, vec![Wait, StartAttempt]),
        (
            Open,
            SaleEvent::Charge {
                scanner_free: false,
                ..
            },
        ) => (p, vec![Refuse(Refusal::Busy)]),
        (Open, SaleEvent::Charge { .. }) => (WaitingScan, vec![Wait, Arm]),

        (WaitingScan, SaleEvent::Scanned { code_used: true }) => (p, vec![IgnoreScan(CODE_USED)]),
        (WaitingScan, SaleEvent::Scanned { code_used: false }) => {
            (Attempting, vec![Disarm, StartAttempt])
        }
        (_, SaleEvent::Scanned { .. }) => (p, vec![IgnoreScan("no charge waiting")]),
        (WaitingScan, SaleEvent::ScanTimedOut) => (
            Open,
            vec![Disarm, EndUnscanned(SCAN_TIMED_OUT), AnswerWaiters],
        ),
        (WaitingScan, SaleEvent::Cancel) => (
            Open,
            vec![
                Disarm,
                EndUnscanned(CANCELLED_BY_CASHIER),
                AnswerWaiters,
                AnswerNow,
            ],
        ),
        // The cancel is answered with the attempt's final Payment.
        (Attempting, SaleEvent::Cancel) => (p, vec![Wait, CancelAttempt]),
        (Stranded, SaleEvent::Cancel) => (p, vec![Refuse(Refusal::Unresolved)]),
        // Nothing in flight: the Payment as it stands is final.
        (Open | Paid | NeedsAttention, SaleEvent::Cancel) => (p, vec![AnswerNow]),

        (Attempting | NeedsAttention, SaleEvent::AttemptEnded(phase)) => match phase {
            Phase::Paid => (Paid, vec![AnswerWaiters]),
            Phase::Failed | Phase::Revoked => (Open, vec![AnswerWaiters]),
            Phase::NeedsAttention => (NeedsAttention, vec![AnswerWaiters]),
            Phase::Submitting | Phase::Paying | Phase::Revoking => (p, Vec::new()),
        },
        (Attempting, SaleEvent::AttemptNotStarted) => (Open, vec![AnswerWaiters]),
        (Attempting, SaleEvent::AttemptHalted) => (Stranded, vec![AnswerWaiters]),
        (Stranded | Attempting, SaleEvent::Resumed) => (Attempting, Vec::new()),
        // Anything else (a scan timer that fired after the scan, an
        // attempt's end seen twice) changes nothing.
        _ => (p, Vec::new()),
    }
}

#[cfg(test)]
mod tests;
