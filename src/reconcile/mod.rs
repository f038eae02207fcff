//! Next-day reconciliation (payment-rules.md §20): the journal of this till against
//! the gateways' bills of one day. Bills are streamed line by line: a big
//! merchant account's bill holds every till's rows, and only this till's
//! are kept.

pub mod alipay_bill;
pub mod matching;
pub mod report;
pub mod wechat_bill;

use serde::Serialize;

use crate::domain::{Fen, Provider};

/// What a bill row records, normalised across both gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// Money taken for an order.
    Payment,
    /// A merchant refund, keyed by its refund number.
    Refund,
    /// Money returned by a revoke (WeChat `REVOKED`; Alipay: a refund whose
    /// batch number is the Alipay trade number).
    RevokeRefund,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    pub provider: Provider,
    pub kind: RowKind,
    pub out_trade_no: String,
    pub transaction_id: String,
    /// The merchant refund number, for `Refund` rows.
    pub refund_no: Option<String>,
    /// Always positive: the direction is in `kind`.
    pub amount: Fen,
}

/// A bill after parsing: this till's rows, and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bill {
    pub rows: Vec<BillRow>,
    /// Rows of other tills (another `device_info` / terminal id).
    pub other_tills: u64,
    /// Rows in the file, all tills.
    pub total_rows: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BillError {
    #[error("{what} bill: {message}")]
    Format { what: &'static str, message: String },
    #[error("cannot read the bill: {0}")]
    Io(String),
}

impl BillError {
    pub(crate) fn format(what: &'static str, message: impl Into<String>) -> BillError {
        BillError::Format {
            what,
            message: message.into(),
        }
    }
}

/// Splits one CSV line on commas (bills never quote fields) and strips
/// each field's decoration: WeChat's leading backtick, Alipay's trailing
/// tab, surrounding spaces.
pub(crate) fn fields(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| {
            f.trim()
                .trim_start_matches('`')
                .trim_end_matches('\t')
                .trim()
        })
        .collect()
}

/// A detail row must have as many fields as its header: fewer or more
/// means the file was cut or garbled.
pub(crate) fn check_width(
    what: &'static str,
    line: usize,
    got: usize,
    want: usize,
) -> Result<(), BillError> {
    if got == want {
        return Ok(());
    }
    Err(BillError::format(
        what,
        format!("line {line}: {got} fields where the header has {want} (truncated or garbled)"),
    ))
}

/// A yuan amount as bills print it: two decimals, maybe signed. Bills in
/// the wild also drop trailing zeros ("0.1"), so one or two decimals pass.
pub(crate) fn bill_amount(s: &str) -> Option<(bool, Fen)> {
    let (neg, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    Fen::parse_yuan(rest, false).ok().map(|f| (neg, f))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    MissingLocal,
    MissingRemote,
    AmountMismatch,
    StatusMismatch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    pub provider: Provider,
    pub out_trade_no: String,
    /// What the journal says (a short text, or null when absent).
    pub local: Option<String>,
    /// What the bill says.
    pub remote: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub date: String,
    pub matched: u64,
    pub discrepancies: Vec<Discrepancy>,
    #[serde(skip)]
    pub totals: Vec<ProviderTotals>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderTotals {
    pub provider: Option<Provider>,
    pub payments: u64,
    pub paid: Fen,
    pub refunds: u64,
    pub refunded: Fen,
    pub other_tills: u64,
}
