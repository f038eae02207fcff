//! Matching the journal against a bill (payment-rules.md §20), pure.
//!
//! Payments match by `out_trade_no`; refunds by refund number; a refund a
//! revoke caused matches the revoked attempt whose revoke refunded. The
//! trap the seed articles describe: a revoke after payment shows up in the
//! bill as a payment plus a refund; counting only the payment makes the
//! till look short.

use std::collections::{BTreeMap, BTreeSet};

use super::{Bill, Discrepancy, DiscrepancyKind, ProviderTotals, Report, RowKind};
use crate::domain::{Fen, Provider};
use crate::gateway::RevokeEffect;
use crate::journal::{AttemptRow, RefundRow, RefundStatus};
use crate::machine::Phase;

#[derive(Default)]
struct Remote {
    /// out_trade_no → (amount, transaction_id)
    payments: BTreeMap<String, (Fen, String)>,
    /// out_trade_no → amount returned by a revoke
    revokes: BTreeMap<String, Fen>,
    /// refund_no → (out_trade_no, amount)
    refunds: BTreeMap<String, (String, Fen)>,
}

fn remote(bill: &Bill) -> Remote {
    let mut r = Remote::default();
    for row in &bill.rows {
        match row.kind {
            RowKind::Payment => {
                let e = r
                    .payments
                    .entry(row.out_trade_no.clone())
                    .or_insert((Fen(0), row.transaction_id.clone()));
                e.0 = Fen(e.0 .0 + row.amount.0);
            }
            RowKind::RevokeRefund => {
                let e = r.revokes.entry(row.out_trade_no.clone()).or_insert(Fen(0));
                *e = Fen(e.0 + row.amount.0);
            }
            RowKind::Refund => {
                let no = row.refund_no.clone().unwrap_or_default();
                r.refunds.insert(no, (row.out_trade_no.clone(), row.amount));
            }
        }
    }
    r
}

fn yuan(f: Fen) -> String {
    format!("¥{}", f.to_yuan())
}

struct Out<'a> {
    provider: Provider,
    matched: &'a mut u64,
    found: &'a mut Vec<Discrepancy>,
}

impl Out<'_> {
    fn add(
        &mut self,
        kind: DiscrepancyKind,
        otn: &str,
        local: Option<String>,
        remote: Option<String>,
    ) {
        self.found.push(Discrepancy {
            kind,
            provider: self.provider,
            out_trade_no: otn.to_string(),
            local,
            remote,
        });
    }
}

/// Reconciles one provider's attempts and refunds against its bill.
// One function: the matching rules read as one list, journal side then bill side.
pub fn reconcile(
    date: &str,
    attempts: &[AttemptRow],
    refunds: &[(Provider, RefundRow)],
    bills: &[(Provider, Bill)],
) -> Report {
    let mut matched = 0;
    let mut found = Vec::new();
    let mut totals = Vec::new();
    for (provider, bill) in bills {
        let r = remote(bill);
        let mut out = Out {
            provider: *provider,
            matched: &mut matched,
            found: &mut found,
        };
        let mine: Vec<&AttemptRow> = attempts
            .iter()
            .filter(|a| a.provider == *provider)
            .collect();
        let known: BTreeSet<&str> = mine.iter().map(|a| a.out_trade_no.as_str()).collect();
        for a in &mine {
            attempt(&mut out, a, &r);
        }
        for (otn, (amount, txn)) in &r.payments {
            if !known.contains(otn.as_str()) {
                out.add(
                    DiscrepancyKind::MissingLocal,
                    otn,
                    None,
                    Some(format!("paid {} ({txn})", yuan(*amount))),
                );
            }
        }
        for (otn, amount) in &r.revokes {
            if !known.contains(otn.as_str()) && !r.payments.contains_key(otn) {
                out.add(
                    DiscrepancyKind::MissingLocal,
                    otn,
                    None,
                    Some(format!("revoke refund {}", yuan(*amount))),
                );
            }
        }
        // A day's refunds, whatever the day of their sale.
        let my_refunds: Vec<&RefundRow> = refunds
            .iter()
            .filter(|(p, _)| p == provider)
            .map(|(_, f)| f)
            .collect();
        // Bills name a refund by the number the gateway saw.
        let local_nos: BTreeSet<&str> = my_refunds
            .iter()
            .map(|f| f.out_refund_no.as_str())
            .collect();
        for f in &my_refunds {
            refund(&mut out, f, &r);
        }
        for (no, (otn, amount)) in &r.refunds {
            if !local_nos.contains(no.as_str()) {
                out.add(
                    DiscrepancyKind::MissingLocal,
                    otn,
                    None,
                    Some(format!("refund {no} {}", yuan(*amount))),
                );
            }
        }
        let mut t = ProviderTotals {
            provider: Some(*provider),
            other_tills: bill.other_tills,
            ..ProviderTotals::default()
        };
        for row in &bill.rows {
            if row.kind == RowKind::Payment {
                t.payments += 1;
                t.paid = Fen(t.paid.0 + row.amount.0);
            } else {
                t.refunds += 1;
                t.refunded = Fen(t.refunded.0 + row.amount.0);
            }
        }
        totals.push(t);
    }
    Report {
        date: date.to_string(),
        matched,
        discrepancies: found,
        totals,
    }
}

fn attempt(out: &mut Out<'_>, a: &AttemptRow, r: &Remote) {
    let otn = a.out_trade_no.as_str();
    let paid = r.payments.get(otn).map(|p| p.0);
    let revoked = r.revokes.get(otn).copied();
    let remote_text = match (paid, revoked) {
        (None, None) => None,
        (Some(p), None) => Some(format!("paid {}", yuan(p))),
        (Some(p), Some(v)) => Some(format!("paid {}, revoke refund {}", yuan(p), yuan(v))),
        (None, Some(v)) => Some(format!("revoke refund {}", yuan(v))),
    };
    let local = |what: &str| Some(format!("{what} {}", yuan(a.amount)));
    use DiscrepancyKind::*;
    match (a.state.phase, a.revoke_effect) {
        (Phase::Paid, _) => match (paid, revoked) {
            (Some(p), None) if p == a.amount => *out.matched += 1,
            (Some(_), None) => out.add(AmountMismatch, otn, local("paid"), remote_text),
            (None, None) => out.add(MissingRemote, otn, local("paid"), None),
            (_, Some(_)) => out.add(StatusMismatch, otn, local("paid"), remote_text),
        },
        // Revoked after payment: the bill must show the money going back,
        // all that was booked (another amount than the sale's when the
        // revoke was for AMOUNT_MISMATCH).
        (Phase::Revoked, Some(RevokeEffect::Refunded)) => match (paid, revoked) {
            (_, Some(v)) if v == a.booked.unwrap_or(a.amount) => *out.matched += 1,
            (_, Some(_)) => out.add(
                AmountMismatch,
                otn,
                local("revoked (refunded)"),
                remote_text,
            ),
            (Some(_), None) => out.add(
                StatusMismatch,
                otn,
                local("revoked (refunded)"),
                remote_text,
            ),
            (None, None) => out.add(MissingRemote, otn, local("revoked (refunded)"), None),
        },
        // Closed unpaid, or a WeChat reverse that did not say: no money may
        // be kept; a paid-and-returned pair is fine only when unstated.
        (Phase::Revoked, effect) => match (paid, revoked) {
            (None, None) => *out.matched += 1,
            (Some(p), Some(v)) if p == v && effect != Some(RevokeEffect::Closed) => {
                *out.matched += 1
            }
            _ => out.add(
                StatusMismatch,
                otn,
                local("revoked (closed, no money moved)"),
                remote_text,
            ),
        },
        (Phase::Failed, _) => match remote_text {
            None => *out.matched += 1,
            some => out.add(StatusMismatch, otn, local("failed (not paid)"), some),
        },
        (Phase::NeedsAttention, _) => {
            out.add(StatusMismatch, otn, local("needs_attention"), remote_text)
        }
        (phase, _) => out.add(
            StatusMismatch,
            otn,
            local(&format!("still {}", phase.as_str())),
            remote_text,
        ),
    }
}

fn refund(out: &mut Out<'_>, f: &RefundRow, r: &Remote) {
    let otn = f.out_trade_no.as_str();
    let local = Some(format!(
        "refund {} {} {}",
        f.refund_no,
        yuan(f.amount),
        f.status.as_str()
    ));
    let remote = r.refunds.get(&f.out_refund_no).map(|(_, a)| *a);
    let remote_text = remote.map(|a| format!("refund {} {}", f.out_refund_no, yuan(a)));
    use DiscrepancyKind::*;
    match (f.status, remote) {
        (RefundStatus::Failed, None) => *out.matched += 1,
        (RefundStatus::Failed, Some(_)) => out.add(StatusMismatch, otn, local, remote_text),
        (_, Some(a)) if a == f.amount => *out.matched += 1,
        (_, Some(_)) => out.add(AmountMismatch, otn, local, remote_text),
        (_, None) => out.add(MissingRemote, otn, local, None),
    }
}

#[cfg(test)]
mod tests;
