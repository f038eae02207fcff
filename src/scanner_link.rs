//! Wires the scanner (if configured) to the engine: placeholder until the
//! serial reader lands; returns the status source for `status`.

use std::sync::Arc;

use crate::config::Config;
use crate::engine::Engine;

pub type ScannerStatus = Arc<dyn Fn() -> (String, bool) + Send + Sync>;

pub fn start(cfg: &Config, _engine: &Arc<Engine>) -> Option<ScannerStatus> {
    let device = cfg.scanner.as_ref()?.device.display().to_string();
    Some(Arc::new(move || (device.clone(), false)))
}
