//! An operator's verdict on an attempt that needs attention: checked here,
//! stepped by the attempt machine, committed with who, when and why. The
//! daemon applies it through the order's owner; with no daemon running,
//! `tillpay journal resolve` applies it to the journal directly, by the
//! same rules.

use crate::gateway::{GatewayNote, PaidInfo};
use crate::journal::{AttemptRow, Journal, JournalError};
use crate::machine::{self, Attempt, Phase, Verdict};

/// `journal resolve` as the operator gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRequest {
    pub order_no: String,
    pub as_paid: bool,
    /// The payment's id in the merchant portal, when the gateway never
    /// named it (WeChat 微信订单号 / Alipay 支付宝交易号).
    pub transaction_id: Option<String>,
    /// When it was paid, as the portal shows it (RFC 3339, or
    /// `YYYY-MM-DD HH:MM:SS` in the till's local time), when the gateway
    /// never said: the sale belongs to the day it was paid.
    pub paid_at: Option<String>,
    pub operator: String,
    pub note: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The verdict cannot be taken as given; the text says what to give.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// A payment time in RFC 3339, from what the operator typed.
fn payment_time(s: &str) -> Option<String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.to_rfc3339());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok()?;
    use chrono::TimeZone;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.to_rfc3339())
}

/// The verdict the machine is given for `row`, or why it cannot be given.
/// A paid sale always names its payment and keeps the payment's own time
/// (the gateway's, or the portal's): never the moment of the resolve.
pub fn verdict(row: &AttemptRow, req: &ResolveRequest) -> Result<Verdict, ResolveError> {
    verdict_text(row, req).map_err(ResolveError::Refused)
}

fn verdict_text(row: &AttemptRow, req: &ResolveRequest) -> Result<Verdict, String> {
    if !req.as_paid {
        if req.transaction_id.is_some() || req.paid_at.is_some() {
            return Err("a transaction id and a payment time go with --as paid only".into());
        }
        return Ok(Verdict::Unpaid);
    }
    let transaction_id = match (req.transaction_id.as_deref(), row.transaction_id.as_deref()) {
        (Some(t), Some(known)) if t != known => {
            return Err(format!("the gateway named this payment {known}, not {t}"))
        }
        (Some(t), _) | (None, Some(t)) => t.to_string(),
        (None, None) => {
            return Err(format!(
                "order {}: to resolve it as paid, give the payment's transaction id from the \
                 merchant portal (--transaction-id: WeChat 微信订单号 / Alipay 支付宝交易号)",
                req.order_no
            ))
        }
    };
    let paid_at = match (req.paid_at.as_deref(), row.paid_at.as_deref()) {
        (Some(given), _) => Some(payment_time(given).ok_or_else(|| {
            format!("--paid-at {given:?}: give RFC 3339 or YYYY-MM-DD HH:MM:SS (local time)")
        })?),
        (None, Some(known)) => Some(known.to_string()),
        (None, None) => None,
    };
    let Some(paid_at) = paid_at else {
        return Err(format!(
            "order {}: the gateway never said when it was paid; give the payment time the \
             merchant portal shows (--paid-at \"YYYY-MM-DD HH:MM:SS\"): the sale belongs to \
             the day it was paid",
            req.order_no
        ));
    };
    Ok(Verdict::Paid(PaidInfo {
        paid_by: Default::default(),
        transaction_id,
        paid_at: Some(paid_at),
        amount: row.booked,
    }))
}

/// Steps the attempt machine with the verdict and commits it. Returns the
/// attempt's new state.
pub fn apply(j: &Journal, row: &AttemptRow, req: &ResolveRequest) -> Result<Attempt, ResolveError> {
    let verdict = verdict(row, req)?;
    let label = match verdict {
        Verdict::Paid(_) => "paid",
        Verdict::Unpaid => "unpaid",
    };
    let note = GatewayNote::new(
        "OPERATOR_RESOLVED",
        format!("{label} by {}: {}", req.operator, req.note),
    );
    let (next, actions) = machine::resolve(row.state, verdict, note);
    let rec = actions.into_iter().find_map(|a| match a {
        machine::Action::Record(r) => Some(r),
        _ => None,
    });
    let Some(rec) = rec.filter(|_| next.phase != Phase::NeedsAttention) else {
        return Err(ResolveError::Refused(format!(
            "attempt {} does not wait for an operator",
            row.out_trade_no
        )));
    };
    j.resolve(row, &next, &rec, &req.operator, &req.note)?;
    Ok(next)
}

/// `journal resolve` with no daemon running: the order's attempt that
/// waits for an operator, resolved in the journal directly.
pub fn offline(j: &Journal, req: &ResolveRequest) -> Result<(AttemptRow, Attempt), ResolveError> {
    let row = j.awaiting_operator(&req.order_no)?.ok_or_else(|| {
        ResolveError::Refused(format!(
            "order {} has no attempt that needs attention",
            req.order_no
        ))
    })?;
    let next = apply(j, &row, req)?;
    Ok((row, next))
}

#[cfg(test)]
mod tests;
