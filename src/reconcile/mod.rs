//! Next-day reconciliation (payment-rules.md §20): the journal of this till against
//! the gateways' bills of one day. Bills are streamed line by line: a big
//! merchant account's bill holds every till's rows, and only this till's
//! are kept.

pub mod matching;
pub mod report;

use serde::Serialize;

use crate::domain::{Fen, Provider};
pub use crate::gateway::bill::{Bill, BillError, BillRow, RowKind};

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
