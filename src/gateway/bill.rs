//! Bills: what a gateway serves for a day, and the rows a channel's bill
//! parser reads from it, normalised across channels for reconciliation.

use serde::{Deserialize, Serialize};

use crate::domain::{Fen, Provider};
use crate::gateway::GatewayNote;

/// A day's bill as the gateway serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillAnswer {
    /// WeChat: the CSV text's bytes; Alipay: the zip's bytes.
    File(Vec<u8>),
    /// Not generated yet (WeChat "Bill Creating", before 10:00 next day).
    NotYet(GatewayNote),
    /// No bill for that day (no trades): WeChat "No Bill Exist", Alipay
    /// `isp.bill_not_exist`.
    NoBill(GatewayNote),
    Failed(GatewayNote),
}

/// What a bill row records, normalised across both gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillRow {
    pub provider: Provider,
    /// The till the bill names (WeChat 设备号, Alipay 终端号, the
    /// acquirer's 设备编号).
    pub till: String,
    pub kind: RowKind,
    pub out_trade_no: String,
    pub transaction_id: String,
    /// The merchant refund number, for `Refund` rows.
    pub refund_no: Option<String>,
    /// Always positive: the direction is in `kind`.
    pub amount: Fen,
}

/// The till id that parses a bill for every till at once (HQ's fleet
/// reconciliation): each row keeps its till in [`BillRow::till`].
pub const ALL_TILLS: &str = "*";

/// Whether a parse for `till_id` keeps a row of the till `device`.
pub fn keeps(till_id: &str, device: &str) -> bool {
    till_id == ALL_TILLS || device == till_id
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
