//! The till ↔ HQ sync protocol: what a till pushes (`POST /v1/sync`) and
//! what HQ answers. One definition, used by both sides.
//!
//! A batch carries the till's journal events after `after` (the high-water
//! mark the till last had acknowledged), in id order and all of them up to
//! the last one sent, and, for each order they touch, a snapshot of its
//! rows as they are when the batch is read. HQ keeps `(till_id, event id)`
//! once, and a snapshot only when it is newer (`version`) than the one it
//! has: duplicate, late and out-of-order batches change nothing.

use serde::{Deserialize, Serialize};

/// The path a till posts its batches to.
pub const SYNC_PATH: &str = "/v1/sync";

/// Events per batch, at most (the till sends fewer when fewer are new).
pub const MAX_EVENTS: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The sending till (HQ checks it against the token's till).
    pub till_id: String,
    /// Every event with an id above this and up to the last one here is in
    /// this batch (ids in between that are missing never existed or were
    /// archived after an earlier sync).
    pub after: i64,
    pub events: Vec<Event>,
    pub orders: Vec<OrderSnapshot>,
    /// What became of the commands HQ sent before.
    #[serde(default)]
    pub done: Vec<Done>,
    /// Shifts closed since the last one HQ took, with their reports.
    #[serde(default)]
    pub shifts: Vec<ShiftReport>,
}

/// A closed shift and its report (the till's Z-report, as `tillpay shift
/// report` prints it as JSON). Sent once; HQ keeps the first it gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftReport {
    pub shift_no: i64,
    /// Wall-clock ms.
    pub opened_at: i64,
    pub closed_at: i64,
    pub report: serde_json::Value,
}

/// Closed shifts per batch, at most.
pub const MAX_SHIFTS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    /// Wall-clock ms.
    pub at: i64,
    pub order_no: String,
    pub out_trade_no: Option<String>,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// One order's rows, read together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    pub order_no: String,
    /// The id of the order's latest event when the rows were read: a later
    /// snapshot has a higher one.
    pub version: i64,
    pub sale: Sale,
    pub attempts: Vec<Attempt>,
    pub refunds: Vec<Refund>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sale {
    /// Fen.
    pub amount: u64,
    pub subject: String,
    /// The till's local day, `YYYY-MM-DD`.
    pub local_date: String,
    pub created_at: i64,
    pub cancelled: bool,
    pub cancel_reason: Option<String>,
    pub operator_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub out_trade_no: String,
    pub seq: u32,
    pub provider: String,
    pub channel: String,
    pub amount: u64,
    /// First 4 and last 4 digits only.
    pub code_masked: String,
    pub phase: String,
    pub submitted_at: i64,
    pub updated_at: i64,
    pub transaction_id: Option<String>,
    pub paid_at: Option<String>,
    pub booked_amount: Option<u64>,
    pub customer_paid: Option<u64>,
    pub discount: Option<u64>,
    pub payer: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub revoke_tries: u32,
    /// What a revoke did (`closed`, `refunded`, `unstated`), when one did:
    /// reconciliation expects a revoke's refund row in the bill.
    #[serde(default)]
    pub revoke_effect: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_no: String,
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub amount: u64,
    pub status: String,
    pub refund_id: Option<String>,
    pub reason: Option<String>,
    pub operator_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
}

/// HQ's answer to a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Every event up to this id is kept at HQ: the till sends from here.
    pub high_water: i64,
    /// What operators at HQ asked of this till, oldest first, until the
    /// till reports each done. Travelling back in the sync answers, they
    /// need no port open on the till.
    #[serde(default)]
    pub commands: Vec<Command>,
}

/// An operator's request made at HQ, carried out by the till as its own
/// POS would ask it (so each is checked, journaled and done by the order's
/// owner). Both are safe to carry out twice: a second resolve finds
/// nothing waiting, a second refund with the same number is the same
/// refund.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: i64,
    #[serde(flatten)]
    pub what: Order,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Order {
    /// The operator's verdict on an attempt that needs attention.
    Resolve {
        order_no: String,
        as_paid: bool,
        transaction_id: Option<String>,
        paid_at: Option<String>,
        operator: String,
        note: String,
    },
    /// A refund of a paid sale.
    Refund {
        order_no: String,
        refund_no: String,
        /// Fen.
        amount: u64,
        reason: Option<String>,
        operator_id: Option<String>,
    },
    /// A command of a newer HQ: refused, not a reason to stop syncing.
    #[serde(other)]
    Unknown,
}

/// What a command came to on the till.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub id: i64,
    pub ok: bool,
    /// The resulting status (`revoked`, `refunded`, `processing`, …), or
    /// why the till refused it.
    pub message: String,
}
