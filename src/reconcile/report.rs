//! Reconciliation output: a table for people, JSON per payment-rules.md §20, CSV
//! for the accountant.

use std::fmt::Write as _;

use super::{Discrepancy, DiscrepancyKind, Report};

fn kind_str(k: DiscrepancyKind) -> &'static str {
    match k {
        DiscrepancyKind::MissingLocal => "missing_local",
        DiscrepancyKind::MissingRemote => "missing_remote",
        DiscrepancyKind::AmountMismatch => "amount_mismatch",
        DiscrepancyKind::StatusMismatch => "status_mismatch",
    }
}

/// What the shop should do about each kind.
pub fn advice(k: DiscrepancyKind) -> &'static str {
    match k {
        DiscrepancyKind::MissingLocal => {
            "the gateway booked money this till does not know: find the sale in the merchant portal; if it was charged twice, refund it"
        }
        DiscrepancyKind::MissingRemote => {
            "the till recorded money the gateway did not book: look the order up in the merchant portal before settling the sale"
        }
        DiscrepancyKind::AmountMismatch => "the amounts differ: check the order in the merchant portal and refund or charge the difference",
        DiscrepancyKind::StatusMismatch => {
            "the till and the gateway disagree on the outcome: query the order; then refund it, or record the verdict with `tillpay journal resolve`"
        }
    }
}

pub fn json(r: &Report) -> String {
    serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub fn table(r: &Report, till_id: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Reconciliation of till {till_id} for {}", r.date);
    let _ = writeln!(
        s,
        "{:<8} {:>9} {:>14} {:>8} {:>14} {:>12}",
        "provider", "payments", "paid", "refunds", "refunded", "other tills"
    );
    for t in &r.totals {
        let _ = writeln!(
            s,
            "{:<8} {:>9} {:>14} {:>8} {:>14} {:>12}",
            t.provider.map(|p| p.as_str()).unwrap_or("-"),
            t.payments,
            format!("¥{}", t.paid.to_yuan()),
            t.refunds,
            format!("¥{}", t.refunded.to_yuan()),
            t.other_tills
        );
    }
    let _ = writeln!(s, "matched: {}", r.matched);
    if r.discrepancies.is_empty() {
        let _ = writeln!(s, "no discrepancies");
        return s;
    }
    let _ = writeln!(s, "discrepancies: {}", r.discrepancies.len());
    for d in &r.discrepancies {
        let _ = writeln!(
            s,
            "  {:<15} {:<7} {}\n      till:    {}\n      gateway: {}\n      what to do: {}",
            kind_str(d.kind),
            d.provider.as_str(),
            d.out_trade_no,
            d.local.as_deref().unwrap_or("—"),
            d.remote.as_deref().unwrap_or("—"),
            advice(d.kind)
        );
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv(r: &Report) -> String {
    let mut s = String::from("date,kind,provider,out_trade_no,local,remote\n");
    let row = |d: &Discrepancy| {
        [
            r.date.as_str(),
            kind_str(d.kind),
            d.provider.as_str(),
            d.out_trade_no.as_str(),
            d.local.as_deref().unwrap_or(""),
            d.remote.as_deref().unwrap_or(""),
        ]
        .map(csv_field)
        .join(",")
    };
    for d in &r.discrepancies {
        s.push_str(&row(d));
        s.push('\n');
    }
    s
}
