//! Start-up recovery (POLICY 15): every attempt the journal holds in
//! flight is resumed by the same rules, its timers measured from the
//! recorded submission time. Sales left waiting for a scan are cancelled.

use std::sync::Arc;
use std::time::Duration;

use super::machine::{Phase, Record};
use super::{blocking, worker, Engine, EngineError};
use crate::gateway::GatewayNote;
use crate::journal::now_ms;

pub(super) async fn recover(engine: &Arc<Engine>) -> Result<usize, EngineError> {
    let j = engine.journal().clone();
    let (orphans, unfinished) = blocking(move || Ok((j.cancel_orphan_sales()?, j.unfinished()?)))
        .await
        .map_err(|e| engine.journal_error(e))?;
    if orphans > 0 {
        tracing::info!(
            orphans,
            "cancelled sales that were waiting for a scan when the daemon stopped"
        );
    }
    let count = unfinished.len();
    for row in unfinished {
        let Some(gateway) = engine.gateways.get(&row.provider).cloned() else {
            // The provider was removed from the config with money possibly
            // in flight: only an operator can settle it now.
            tracing::error!(order = %row.order_no, out_trade_no = %row.out_trade_no,
                provider = %row.provider, "cannot resume: provider not configured");
            let mut state = row.state;
            state.phase = Phase::NeedsAttention;
            let rec = Record {
                kind: "resume_impossible",
                note: Some(GatewayNote::new(
                    "PROVIDER_NOT_CONFIGURED",
                    format!("{} is no longer configured", row.provider),
                )),
                paid: None,
                revoke_effect: None,
                config_error: true,
            };
            let j = engine.journal().clone();
            let otn = row.out_trade_no.clone();
            blocking(move || j.record(&otn, &state, &rec))
                .await
                .map_err(|e| engine.journal_error(e))?;
            continue;
        };
        // Wall clock across the restart; a clock that went backwards
        // counts as no time passed (the machine then asks the gateway).
        let elapsed =
            Duration::from_millis(now_ms().saturating_sub(row.submitted_at).max(0) as u64);
        tracing::info!(order = %row.order_no, out_trade_no = %row.out_trade_no,
            phase = row.state.phase.as_str(), elapsed_ms = elapsed.as_millis() as u64, "recovering attempt");
        let slot = Engine::reserve(&mut engine.live(), &row.order_no);
        engine.launch(row, gateway, worker::First::Resume { elapsed }, slot);
    }
    Ok(count)
}
