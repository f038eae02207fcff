//! The objects the POS sees (docs/pos-protocol.md): Payment, Refund, notifications,
//! and the application errors with their codes.

use serde::{Deserialize, Serialize};

use crate::domain::Provider;
use crate::gateway::GatewayNote;
use crate::journal::{AttemptRow, RefundRow, RefundStatus, SaleRow};
use crate::machine::sale::Unscanned;
use crate::machine::Phase;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    WaitingScan,
    Paying,
    Paid,
    Failed,
    Cancelled,
    Revoked,
    NeedsAttention,
}

impl PaymentStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, PaymentStatus::WaitingScan | PaymentStatus::Paying)
    }

    fn of_phase(p: Phase) -> PaymentStatus {
        match p {
            Phase::Submitting | Phase::Paying | Phase::Revoking => PaymentStatus::Paying,
            Phase::Paid => PaymentStatus::Paid,
            Phase::Failed => PaymentStatus::Failed,
            Phase::Revoked => PaymentStatus::Revoked,
            Phase::NeedsAttention => PaymentStatus::NeedsAttention,
        }
    }
}

/// What the engine is doing with a sale right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Waiting for a scan.
    Armed,
    /// A code was taken: an attempt is starting or in flight.
    Running,
    Idle,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: String,
    pub message: String,
}

impl From<&GatewayNote> for ErrorObject {
    fn from(n: &GatewayNote) -> Self {
        ErrorObject {
            code: n.code.clone(),
            message: n.message.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub order_no: String,
    pub amount: u64,
    pub status: PaymentStatus,
    /// What the customer paid with.
    pub provider: Option<Provider>,
    /// The route it went by: the wallet's own gateway (`wechat`,
    /// `alipay`) or an acquirer's.
    #[serde(default)]
    pub channel: Option<String>,
    pub out_trade_no: Option<String>,
    pub transaction_id: Option<String>,
    pub paid_at: Option<String>,
    pub refunded_amount: u64,
    pub error: Option<ErrorObject>,
    /// The cashier of the latest charge, when the POS named one.
    #[serde(default)]
    pub operator_id: Option<String>,
    /// What goes on the customer's receipt: only for a paid sale.
    #[serde(default)]
    pub receipt: Option<Receipt>,
}

/// The receipt data of a paid sale, amounts in fen. `customer_paid` and
/// `discount` are null where the gateway did not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub provider: Provider,
    pub channel: String,
    pub transaction_id: Option<String>,
    pub paid_at: Option<String>,
    pub amount: u64,
    pub customer_paid: Option<u64>,
    pub discount: Option<u64>,
    /// The payer as the gateway names them, masked.
    pub payer: Option<String>,
}

impl Receipt {
    fn of(a: &AttemptRow) -> Receipt {
        Receipt {
            provider: a.provider,
            channel: a.channel.clone(),
            transaction_id: a.transaction_id.clone(),
            paid_at: a.paid_at.clone(),
            amount: a.booked.unwrap_or(a.amount).0,
            customer_paid: a.paid_by.customer_paid.map(|f| f.0),
            discount: a.paid_by.discount.map(|f| f.0),
            payer: a.paid_by.payer.clone(),
        }
    }
}

impl Payment {
    /// The sale as the journal has it, with what the engine is doing with
    /// it now. The attempt shown is the paid one if any, else the latest.
    pub fn build(
        sale: &SaleRow,
        attempts: &[AttemptRow],
        refunds: &[RefundRow],
        live: Live,
    ) -> Payment {
        let paid = attempts.iter().find(|a| a.state.phase == Phase::Paid);
        let shown = paid.or_else(|| attempts.last());
        let status = match (paid, live, shown) {
            (Some(_), _, _) => PaymentStatus::Paid,
            (None, Live::Armed, _) => PaymentStatus::WaitingScan,
            // Taken by the engine but maybe not journaled as an attempt yet.
            (None, Live::Running, Some(a)) if !a.state.phase.is_final() => {
                PaymentStatus::of_phase(a.state.phase)
            }
            (None, Live::Running, _) => PaymentStatus::Paying,
            (None, Live::Idle, _) if sale.cancelled => PaymentStatus::Cancelled,
            (None, Live::Idle, Some(a)) => PaymentStatus::of_phase(a.state.phase),
            (None, Live::Idle, None) => PaymentStatus::Cancelled,
        };
        let refunded_amount = refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Refunded)
            .map(|r| r.amount.0)
            .sum();
        let error = match (status, shown) {
            (PaymentStatus::Cancelled, _) => sale
                .cancel_reason
                .as_deref()
                .and_then(Unscanned::of_code)
                .map(|u| ErrorObject {
                    code: u.code.to_string(),
                    message: u.message.to_string(),
                }),
            (PaymentStatus::Paid | PaymentStatus::WaitingScan, _) => None,
            (_, Some(a)) => a.error.as_ref().map(ErrorObject::from),
            _ => None,
        };
        Payment {
            order_no: sale.order_no.clone(),
            amount: sale.amount.0,
            status,
            provider: shown.map(|a| a.provider),
            channel: shown.map(|a| a.channel.clone()),
            out_trade_no: shown.map(|a| a.out_trade_no.clone()),
            transaction_id: shown.and_then(|a| a.transaction_id.clone()),
            paid_at: shown
                .filter(|a| a.state.phase == Phase::Paid)
                .and_then(|a| a.paid_at.clone()),
            refunded_amount,
            error,
            operator_id: sale.operator_id.clone(),
            receipt: paid.map(Receipt::of),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundView {
    pub order_no: String,
    pub refund_no: String,
    pub amount: u64,
    /// `refunded`, `processing` or `failed`.
    pub status: String,
    pub error: Option<ErrorObject>,
}

impl From<&RefundRow> for RefundView {
    fn from(r: &RefundRow) -> Self {
        let status = match r.status {
            RefundStatus::Refunded => "refunded",
            RefundStatus::Failed => "failed",
            RefundStatus::Processing | RefundStatus::Pending => "processing",
        };
        RefundView {
            order_no: r.order_no.clone(),
            refund_no: r.refund_no.clone(),
            amount: r.amount.0,
            status: status.to_string(),
            // What the gateway said about a refund still processing (its
            // acceptance) is not an error.
            error: r
                .error
                .as_ref()
                .filter(|_| r.status == RefundStatus::Failed)
                .map(ErrorObject::from),
        }
    }
}

/// A notification for every connected POS client (docs/pos-protocol.md).
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// Params of a `payment.event`.
    Payment(serde_json::Value),
    /// Params of a `scanner.event`.
    Scanner(serde_json::Value),
    /// Params of a `refund.event`: a Refund that ended.
    Refund(serde_json::Value),
}

impl Notification {
    pub fn method(&self) -> &'static str {
        match self {
            Notification::Payment(_) => "payment.event",
            Notification::Scanner(_) => "scanner.event",
            Notification::Refund(_) => "refund.event",
        }
    }
    pub fn params(&self) -> &serde_json::Value {
        match self {
            Notification::Payment(p) | Notification::Scanner(p) | Notification::Refund(p) => p,
        }
    }
    pub(crate) fn params_mut(&mut self) -> &mut serde_json::Value {
        match self {
            Notification::Payment(p) | Notification::Scanner(p) | Notification::Refund(p) => p,
        }
    }
}

/// Application errors (docs/pos-protocol.md) and bad params.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("busy: another charge is already waiting for a scan")]
    Busy,
    #[error("order_conflict: {0}")]
    OrderConflict(String),
    #[error("provider_unavailable: {0} is not configured on this till")]
    ProviderUnavailable(Provider),
    #[error("journal_unavailable: {0}")]
    JournalUnavailable(String),
    #[error("unknown_order: {0}")]
    UnknownOrder(String),
    #[error("refund_rejected: {0}")]
    RefundRejected(String),
    /// The code may have reached the gateway but the charge cannot say how
    /// it ended (the journal failed mid-payment). Not 1004: that one
    /// promises nothing was sent. The sale is resolved on restart; `query`
    /// it, and take no other payment for it meanwhile.
    #[error("payment_unresolved: {0}")]
    PaymentUnresolved(String),
    /// JSON-RPC -32602; the message names the param.
    #[error("invalid params: {0}")]
    InvalidParams(String),
}
