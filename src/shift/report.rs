//! Building a shift's report from its journal rows: a pure function.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::journal::{RefundStatus, ShiftRow, ShiftRows};
use crate::machine::Phase;

/// A count and its amount in fen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    pub amount: u64,
}

impl Tally {
    fn add(&mut self, amount: u64) {
        self.count += 1;
        self.amount += amount;
    }
}

/// Paid sales of one provider or cashier, and what was refunded of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub count: u64,
    pub amount: u64,
    pub refunded: u64,
}

/// The Z-report of one shift. Amounts in fen; `sales` counts paid sales
/// only; refunds count once the gateway confirmed them (those it has not
/// yet are in `refunds_processing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftReport {
    pub till_id: String,
    pub shift_no: i64,
    pub opened_at: String,
    /// Null while the shift runs.
    pub closed_at: Option<String>,
    pub sales: Tally,
    pub refunds: Tally,
    pub refunds_processing: Tally,
    pub revoked: Tally,
    /// Sales whose last attempt failed (a declined code, say), with none
    /// paid: nothing kept.
    pub failed: u64,
    /// Attempts an operator must still resolve.
    pub needs_attention: u64,
    pub needs_attention_orders: Vec<String>,
    /// Sales still being paid when the report was made: a closed shift
    /// hands them on, and the next one counts them once they end.
    pub in_flight: u64,
    #[serde(default)]
    pub in_flight_orders: Vec<String>,
    pub by_provider: BTreeMap<String, Split>,
    /// By the cashier the POS named; `""` for sales rung up without one.
    pub by_operator: BTreeMap<String, Split>,
    /// When the first and the last paid sale of the shift were rung up.
    pub first_sale: Option<String>,
    pub last_sale: Option<String>,
}

fn local_time(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
        .unwrap_or_default()
}

/// The report of `shift` from its rows; `closed_at` is when it closes (None
/// for a running shift's report).
pub fn build(
    till_id: &str,
    shift: &ShiftRow,
    closed_at: Option<i64>,
    rows: &ShiftRows,
) -> ShiftReport {
    let mut r = ShiftReport {
        till_id: till_id.to_string(),
        shift_no: shift.shift_no,
        opened_at: local_time(shift.opened_at),
        closed_at: closed_at.map(local_time),
        sales: Tally::default(),
        refunds: Tally::default(),
        refunds_processing: Tally::default(),
        revoked: Tally::default(),
        failed: 0,
        needs_attention: 0,
        needs_attention_orders: Vec::new(),
        in_flight: 0,
        in_flight_orders: Vec::new(),
        by_provider: BTreeMap::new(),
        by_operator: BTreeMap::new(),
        first_sale: None,
        last_sale: None,
    };
    for (sale, attempts) in &rows.sales {
        // A sale handed on by the shift before has attempts that ended
        // there, and were counted there.
        let ended_here = |a: &&crate::journal::AttemptRow| a.updated_at >= shift.opened_at;
        for a in attempts {
            if a.state.phase.is_final() && !ended_here(&a) {
                continue;
            }
            match a.state.phase {
                Phase::Revoked => r.revoked.add(a.amount.0),
                Phase::NeedsAttention => {
                    r.needs_attention += 1;
                    r.needs_attention_orders.push(sale.order_no.clone());
                }
                Phase::Submitting | Phase::Paying | Phase::Revoking => {
                    r.in_flight += 1;
                    r.in_flight_orders.push(sale.order_no.clone());
                }
                Phase::Paid | Phase::Failed => {}
            }
        }
        let Some(paid) = attempts
            .iter()
            .find(|a| a.state.phase == Phase::Paid)
            .filter(ended_here)
        else {
            // A sale, not an attempt: declined once or twice, it failed once.
            let paid_before = attempts.iter().any(|a| a.state.phase == Phase::Paid);
            if !paid_before
                && attempts
                    .last()
                    .is_some_and(|a| a.state.phase == Phase::Failed && ended_here(&a))
            {
                r.failed += 1;
            }
            continue;
        };
        let amount = paid.booked.unwrap_or(paid.amount).0;
        r.sales.add(amount);
        let provider = r.by_provider.entry(paid.provider.to_string()).or_default();
        provider.count += 1;
        provider.amount += amount;
        let cashier = r
            .by_operator
            .entry(sale.operator_id.clone().unwrap_or_default())
            .or_default();
        cashier.count += 1;
        cashier.amount += amount;
        let at = Some(local_time(sale.created_at));
        if r.first_sale.is_none() {
            r.first_sale = at.clone();
        }
        r.last_sale = at;
    }
    for (provider, f) in &rows.refunds {
        match f.status {
            RefundStatus::Refunded => {
                r.refunds.add(f.amount.0);
                r.by_provider
                    .entry(provider.to_string())
                    .or_default()
                    .refunded += f.amount.0;
                r.by_operator
                    .entry(f.operator_id.clone().unwrap_or_default())
                    .or_default()
                    .refunded += f.amount.0;
            }
            RefundStatus::Pending | RefundStatus::Processing => {
                r.refunds_processing.add(f.amount.0)
            }
            RefundStatus::Failed => {}
        }
    }
    r
}

#[cfg(test)]
mod tests;
