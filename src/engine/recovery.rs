//! Start-up recovery (payment-rules.md §15, 17): every attempt the journal holds in
//! flight, and every refund the gateway has not settled, goes to its
//! order's owner, which resumes it by the same rules: an attempt is asked
//! about first, a refund is sent again or asked about. Sales left waiting
//! for a scan are cancelled.

use std::sync::Arc;

use super::order::Msg;
use super::{blocking, Engine, EngineError};

pub(super) async fn recover(engine: &Arc<Engine>) -> Result<usize, EngineError> {
    let j = engine.journal().clone();
    let (orphans, unfinished, refunds) = blocking(move || {
        Ok((
            j.cancel_orphan_sales()?,
            j.unfinished()?,
            j.unsettled_refunds()?,
        ))
    })
    .await
    .map_err(|e| engine.journal_error(e))?;
    if orphans > 0 {
        tracing::info!(
            orphans,
            "cancelled sales that were waiting for a scan when the daemon stopped"
        );
    }
    let count = unfinished.len() + refunds.len();
    for row in unfinished {
        let order_no = row.order_no.clone();
        engine.send(&order_no, Msg::ResumeAttempt(row));
    }
    for row in refunds {
        let order_no = row.order_no.clone();
        engine.send(&order_no, Msg::ResumeRefund(row));
    }
    Ok(count)
}
