//! The engine's side of the scanner: which sale holds it, which sales have
//! a gateway call in flight, and where a scanned code goes. One scanner
//! serves one sale at a time (payment-rules.md §19).

use std::sync::Arc;

use serde_json::json;
use tokio::sync::oneshot;

use super::order::Msg;
use super::{Engine, Notification, ScanOutcome};
use crate::domain::AuthCode;

impl Engine {
    pub fn emit_scanner(&self, event: &str, extra: serde_json::Value) {
        let mut params = json!({"event": event});
        if let (Some(p), serde_json::Value::Object(extra)) = (params.as_object_mut(), extra) {
            p.extend(extra);
        }
        self.broadcast(Notification::Scanner(params));
    }

    /// Takes the scanner for `order_no`. True only when this call took it:
    /// a sale that already holds it (a duplicate charge) did not, and must
    /// not let go of it when that charge is refused.
    pub(super) fn claim_scanner(&self, order_no: &str) -> bool {
        let mut reg = self.registry();
        match &reg.scanner {
            Some(_) => false,
            None => {
                reg.scanner = Some(order_no.to_string());
                true
            }
        }
    }

    pub(super) fn release_scanner(&self, order_no: &str) {
        let mut reg = self.registry();
        if reg.scanner.as_deref() == Some(order_no) {
            reg.scanner = None;
        }
    }

    pub(super) fn set_in_flight(&self, order_no: &str, on: bool) {
        let mut reg = self.registry();
        if on {
            reg.in_flight.insert(order_no.to_string());
        } else {
            reg.in_flight.remove(order_no);
        }
    }

    /// A code from the scanner: to the charge that holds the scanner, or
    /// ignored with the reason. The holder's owner checks the journal for
    /// an earlier use of the code (payment codes are single-use).
    pub async fn scan(self: &Arc<Self>, code: AuthCode) -> ScanOutcome {
        if !self.gateways.contains_key(&code.provider()) {
            return ScanOutcome::Ignored(format!(
                "{} is not configured on this till",
                code.provider()
            ));
        }
        let holder = {
            let reg = self.registry();
            match &reg.scanner {
                Some(o) => Ok(o.clone()),
                None if reg.in_flight.is_empty() => Err("no charge waiting"),
                None => Err("a charge is already paying"),
            }
        };
        let order_no = match holder {
            Ok(o) => o,
            Err(why) => return ScanOutcome::Ignored(why.into()),
        };
        let (tx, rx) = oneshot::channel();
        self.send(&order_no, Msg::Scan { code, reply: tx });
        rx.await
            .unwrap_or_else(|_| ScanOutcome::Ignored("no charge waiting".into()))
    }
}
