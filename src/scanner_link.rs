//! Wires the scan gun (if configured) to the engine: codes go to the
//! waiting charge; everything else becomes a `scanner.event` for the POS.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::engine::{Engine, ScanOutcome};
use crate::scanner::{self, DoubleReadFilter, ScannerEvent, DOUBLE_READ};

/// `(device, connected, problem)` for the `status` method: the problem
/// says why the scanner cannot be used now (absent, grab refused).
pub type ScannerStatus = Arc<dyn Fn() -> (String, bool, Option<String>) + Send + Sync>;

/// Starts the reader; `None` when `[scanner]` is absent.
pub fn start(cfg: &Config, engine: &Arc<Engine>) -> Option<ScannerStatus> {
    Some(start_reader(cfg.scanner.clone()?, engine))
}

/// Reads `scfg`'s device for `engine` until the runtime ends.
pub fn start_reader(scfg: crate::config::ScannerConfig, engine: &Arc<Engine>) -> ScannerStatus {
    let device = scfg.device.display().to_string();
    // Bounded: a flood of scans waits for the engine instead of piling up.
    let (tx, mut rx) = mpsc::channel(32);
    // Double reads are judged here, not in the reader: only a code that a
    // charge took counts as read. A cashier who scans before pressing
    // "charge" (ignored: no charge waiting) can scan the same code again at
    // once.
    let opts = scanner::ReaderOptions {
        double_read_window: None,
        ..Default::default()
    };
    let handle = Arc::new(scanner::spawn_with(scfg, opts, tx));
    let engine = engine.clone();
    let dev = device.clone();
    tokio::spawn(async move {
        let mut taken = DoubleReadFilter::default();
        while let Some(ev) = rx.recv().await {
            dispatch(&engine, &dev, &mut taken, ev).await;
        }
    });
    let status_handle = handle.clone();
    Arc::new(move || {
        (
            device.clone(),
            status_handle.connected(),
            status_handle.problem(),
        )
    })
}

async fn dispatch(
    engine: &Arc<Engine>,
    device: &str,
    taken: &mut DoubleReadFilter,
    ev: ScannerEvent,
) {
    match ev {
        ScannerEvent::Connected => {
            tracing::info!(device, "scanner connected");
            engine.emit_scanner("connected", json!({"device": device}));
        }
        ScannerEvent::Disconnected { reason } => {
            tracing::warn!(device, %reason, "scanner disconnected");
            engine.emit_scanner("disconnected", json!({"device": device, "reason": reason}));
        }
        ScannerEvent::Ignored { reason } => {
            tracing::info!(%reason, "scan ignored");
            engine.emit_scanner("ignored", json!({"reason": reason}));
        }
        ScannerEvent::Code(code) => {
            let masked = code.masked();
            let now = Instant::now();
            let outcome = if taken.is_repeat(&code, now) {
                // Remembered again, so a code held under the gun keeps
                // being dropped while the re-reads go on.
                taken.record(&code, now);
                ScanOutcome::Ignored(format!(
                    "{DOUBLE_READ}: {masked} again within {} ms",
                    taken.window().as_millis()
                ))
            } else {
                let outcome = engine.scan(code.clone()).await;
                if matches!(outcome, ScanOutcome::Taken { .. }) {
                    taken.record(&code, now);
                }
                outcome
            };
            match outcome {
                ScanOutcome::Taken { order_no } => {
                    tracing::info!(order = %order_no, code = %masked, "scan taken")
                }
                ScanOutcome::Ignored(reason) => {
                    tracing::info!(code = %masked, %reason, "scan ignored");
                    engine.emit_scanner(
                        "ignored",
                        json!({"reason": reason, "auth_code_masked": masked}),
                    );
                }
            }
        }
    }
}
