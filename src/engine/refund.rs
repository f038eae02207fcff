//! Refunds (POLICY 17): separate from revokes, keyed by the merchant's
//! refund_no, journaled before they are sent, confirmed by refund query
//! when the answer is unknown.

use std::sync::Arc;

use super::machine::Phase;
use super::{blocking, Engine, EngineError, RefundView};
use crate::domain::{is_valid_id, Fen};
use crate::gateway::{GatewayNote, RefundAnswer, RefundRequest};
use crate::journal::{now_ms, RefundRow, RefundStatus};

/// Refund queries after an unknown or accepted-only answer, `poll_interval` apart.
const CONFIRM_QUERIES: u32 = 3;

pub(super) async fn refund(
    engine: &Arc<Engine>,
    order_no: &str,
    refund_no: &str,
    amount: u64,
    reason: Option<String>,
) -> Result<RefundView, EngineError> {
    if !is_valid_id(refund_no) {
        return Err(EngineError::InvalidParams(
            "refund_no must be 1-32 characters of A-Z a-z 0-9 _ -".into(),
        ));
    }
    if amount == 0 {
        return Err(EngineError::InvalidParams(
            "amount must be at least 1 fen".into(),
        ));
    }
    if !engine.journal_ok() {
        return Err(EngineError::JournalUnavailable(
            "the journal failed earlier".into(),
        ));
    }
    let j = engine.journal().clone();
    let (o, r) = (order_no.to_string(), refund_no.to_string());
    let (sale, existing) = blocking(move || Ok((j.sale(&o)?, j.refund(&r)?)))
        .await
        .map_err(|e| engine.journal_error(e))?;
    let (_, attempts) = sale.ok_or_else(|| EngineError::UnknownOrder(order_no.to_string()))?;
    if let Some(row) = existing {
        // The refund_no is the idempotency key: the same request again
        // confirms the first; a different one is refused.
        if row.order_no != order_no || row.amount != Fen(amount) {
            return Err(EngineError::RefundRejected(format!(
                "refund_no {refund_no} was used for another refund"
            )));
        }
        if row.status == RefundStatus::Failed {
            return Err(rejected_by_gateway(row.error.as_ref()));
        }
        if row.status == RefundStatus::Refunded {
            return Ok(RefundView::from(&row));
        }
        let paid = attempts.iter().find(|a| a.out_trade_no == row.out_trade_no);
        let total = paid.map_or(row.amount, |a| a.amount);
        return send(engine, row, total).await;
    }
    let Some(paid) = attempts.iter().find(|a| a.state.phase == Phase::Paid) else {
        let why = if attempts.iter().any(|a| a.state.phase == Phase::Revoked) {
            "the payment was revoked: its money already went back"
        } else {
            "the order is not paid"
        };
        return Err(EngineError::RefundRejected(why.into()));
    };
    let Some(_) = engine.gateways.get(&paid.provider) else {
        return Err(EngineError::ProviderUnavailable(paid.provider));
    };
    let row = RefundRow {
        refund_no: refund_no.to_string(),
        order_no: order_no.to_string(),
        out_trade_no: paid.out_trade_no.clone(),
        amount: Fen(amount),
        reason,
        status: RefundStatus::Pending,
        refund_id: None,
        error: None,
        created_at: now_ms(),
    };
    let j = engine.journal().clone();
    let (r, total) = (row.clone(), paid.amount);
    blocking(move || j.begin_refund(&r, total))
        .await
        .map_err(|e| match e {
            crate::journal::JournalError::Conflict(m) => EngineError::RefundRejected(m),
            other => engine.journal_error(other),
        })?;
    send(engine, row, paid.amount).await
}

async fn send(
    engine: &Arc<Engine>,
    mut row: RefundRow,
    total: Fen,
) -> Result<RefundView, EngineError> {
    let provider = {
        let j = engine.journal().clone();
        let o = row.order_no.clone();
        let sale = blocking(move || j.sale(&o))
            .await
            .map_err(|e| engine.journal_error(e))?;
        sale.and_then(|(_, a)| a.into_iter().find(|a| a.out_trade_no == row.out_trade_no))
            .map(|a| (a.provider, a.transaction_id))
    };
    let Some((provider, transaction_id)) = provider else {
        return Err(EngineError::UnknownOrder(row.order_no.clone()));
    };
    let gw = engine
        .gateways
        .get(&provider)
        .cloned()
        .ok_or(EngineError::ProviderUnavailable(provider))?;
    let req = RefundRequest {
        out_trade_no: row.out_trade_no.clone(),
        transaction_id,
        refund_no: row.refund_no.clone(),
        total_amount: total,
        refund_amount: row.amount,
        reason: row.reason.clone(),
    };
    let mut answer = gw.refund(&req).await;
    // Only the refund call itself can refuse for good; after an unknown or
    // accepted-only answer, "not found" just means "not landed yet".
    let definite = matches!(
        answer,
        RefundAnswer::Refunded { .. } | RefundAnswer::Failed(_)
    );
    let mut queries = 0;
    // WeChat only accepts a refund ("processing"); unknown answers are
    // asked again. Both are confirmed by refund query, a bounded few times.
    while matches!(
        answer,
        RefundAnswer::Unknown(_) | RefundAnswer::Processing(_)
    ) && queries < CONFIRM_QUERIES
    {
        tokio::time::sleep(engine.config().poll_interval).await;
        answer = match gw.refund_query(&row.out_trade_no, &row.refund_no).await {
            RefundAnswer::Failed(n) if !definite => RefundAnswer::Processing(n),
            other => other,
        };
        queries += 1;
    }
    let (status, refund_id, error): (RefundStatus, Option<String>, Option<GatewayNote>) =
        match answer {
            RefundAnswer::Refunded { refund_id } => (RefundStatus::Refunded, refund_id, None),
            RefundAnswer::Processing(n) | RefundAnswer::Unknown(n) => {
                (RefundStatus::Processing, None, Some(n))
            }
            RefundAnswer::Failed(n) => (RefundStatus::Failed, None, Some(n)),
        };
    let j = engine.journal().clone();
    let (no, id, err) = (row.refund_no.clone(), refund_id.clone(), error.clone());
    blocking(move || j.finish_refund(&no, status, id.as_deref(), err.as_ref()))
        .await
        .map_err(|e| engine.journal_error(e))?;
    if status == RefundStatus::Failed {
        return Err(rejected_by_gateway(error.as_ref()));
    }
    row.status = status;
    row.refund_id = refund_id;
    row.error = error;
    Ok(RefundView::from(&row))
}

/// CONTRACT §3: a refund the gateway refused is error 1006 with the
/// gateway's reason (the refund is journaled as failed; the same request
/// again gets the same answer).
fn rejected_by_gateway(note: Option<&GatewayNote>) -> EngineError {
    EngineError::RefundRejected(match note {
        Some(n) => format!("the gateway refused the refund: {} {}", n.code, n.message),
        None => "the gateway refused the refund".into(),
    })
}
