//! The payment engine. Every order has one owner: a task that takes the
//! order's requests (charge, scan, cancel, query, refund, operator
//! resolution, recovery) one at a time from its mailbox, drives the pure
//! sale, attempt and refund machines in [`crate::machine`], journals before every
//! gateway call, and makes the calls. Requests on one order are therefore
//! linearizable; different orders never wait on each other (payment-rules.md §18).
//!
//! This module is the front door: it checks a request's params, finds or
//! starts the order's owner in the [`Registry`], and hands the request over.
//! The POS socket and the scanner call in; gateways sit behind the
//! [`Gateway`] trait.

mod attempt;
mod order;
mod recovery;
mod refunds;
pub mod resolve;
mod scanner;
pub mod view;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::PaymentConfig;
use crate::domain::{is_valid_id, AuthCode, Provider};
use crate::gateway::Gateway;
use crate::journal::{Journal, JournalError};

use order::Msg;
pub use resolve::ResolveRequest;
pub use view::{EngineError, Notification, Payment, PaymentStatus, RefundView};

/// A charge as the POS asks for it.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub order_no: String,
    pub amount: u64,
    pub subject: Option<String>,
    /// Typed in by hand; without it the charge waits for the scanner.
    pub auth_code: Option<String>,
    /// The cashier (1-32 of A-Z a-z 0-9 _ -).
    pub operator_id: Option<String>,
}

/// What happened to a scanned payment code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Handed to the charge that was waiting.
    Taken { order_no: String },
    /// Charged nothing; the reason is for the cashier.
    Ignored(String),
}

/// The owners of the orders that have live work, and the till-wide facts
/// they share. Held only for map lookups, never across an await.
#[derive(Default)]
struct Registry {
    owners: HashMap<String, mpsc::UnboundedSender<Msg>>,
    /// The sale whose charge holds the scanner (one at a time: 1001 busy).
    scanner: Option<String>,
    /// Sales with an attempt in flight (for `status`).
    in_flight: HashSet<String>,
}

pub struct Engine {
    journal: Arc<Journal>,
    /// The routing: which gateway carries each provider's codes.
    gateways: HashMap<Provider, Arc<dyn Gateway>>,
    /// Every gateway by its channel's name: an attempt, a revoke or a
    /// refund goes on through the channel its pay request went through,
    /// whatever the routing says since.
    channels: HashMap<&'static str, Arc<dyn Gateway>>,
    cfg: PaymentConfig,
    notify: broadcast::Sender<Notification>,
    registry: Mutex<Registry>,
    /// Set on the first journal I/O error: no new charges (payment-rules.md §14).
    journal_failed: AtomicBool,
    /// What that first error was, for `status` and `doctor`.
    journal_failure: Mutex<Option<String>>,
    /// The number of the last notification sent (each carries its `seq`).
    seq: AtomicU64,
}

/// Runs blocking journal work off the async threads. A worker thread that
/// fails (a panic) is a journal failure, never a refusal.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JournalError> + Send + 'static,
) -> Result<T, JournalError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(JournalError::Internal(format!("journal task failed: {e}"))),
    }
}

impl Engine {
    pub fn new(
        journal: Arc<Journal>,
        gateways: Vec<Arc<dyn Gateway>>,
        cfg: PaymentConfig,
    ) -> Arc<Engine> {
        Engine::routed(journal, gateways, &[], cfg)
    }

    /// As [`Engine::new`], with `routes` naming the channel of each
    /// provider it lists; any other provider goes by the first gateway
    /// that carries it.
    pub fn routed(
        journal: Arc<Journal>,
        gateways: Vec<Arc<dyn Gateway>>,
        routes: &[(Provider, String)],
        cfg: PaymentConfig,
    ) -> Arc<Engine> {
        let (notify, _) = broadcast::channel(256);
        let mut by_provider: HashMap<Provider, Arc<dyn Gateway>> = HashMap::new();
        let mut channels = HashMap::new();
        for g in gateways {
            for p in g.carries() {
                by_provider.entry(*p).or_insert_with(|| g.clone());
            }
            channels.insert(g.channel(), g);
        }
        for (p, name) in routes {
            if let Some(g) = channels.get(name.as_str()) {
                by_provider.insert(*p, g.clone());
            }
        }
        Arc::new(Engine {
            journal,
            gateways: by_provider,
            channels,
            cfg,
            notify,
            registry: Mutex::new(Registry::default()),
            journal_failed: AtomicBool::new(false),
            journal_failure: Mutex::new(None),
            seq: AtomicU64::new(0),
        })
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.notify.subscribe()
    }

    pub fn config(&self) -> &PaymentConfig {
        &self.cfg
    }

    pub fn has_provider(&self, p: Provider) -> bool {
        self.gateways.contains_key(&p)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `msg` to the owner of `order_no`, starting one if the order
    /// has none. The send happens under the registry lock, and an owner
    /// retires only under it with an empty mailbox, so no message is lost.
    fn send(self: &Arc<Self>, order_no: &str, msg: Msg) {
        let mut reg = self.registry();
        if let Some(tx) = reg.owners.get(order_no) {
            if let Err(mpsc::error::SendError(msg)) = tx.send(msg) {
                // The owner panicked: a fresh one takes over from the journal.
                reg.owners.remove(order_no);
                drop(reg);
                return self.send(order_no, msg);
            }
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // A fresh channel with its receiver in hand: this send cannot fail.
        let _ = tx.send(msg);
        reg.owners.insert(order_no.to_string(), tx);
        order::spawn(self.clone(), order_no.to_string(), rx);
    }

    /// Sends a request to the owner and waits for its answer.
    async fn ask<T>(
        self: &Arc<Self>,
        order_no: &str,
        msg: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Msg,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.send(order_no, msg(tx));
        rx.await.unwrap_or_else(|_| {
            Err(EngineError::PaymentUnresolved(format!(
                "the owner of order {order_no} stopped without an answer; query the order"
            )))
        })
    }

    pub(crate) fn emit_payment(&self, order_no: &str, event: &str, extra: serde_json::Value) {
        let mut params = json!({"order_no": order_no, "event": event});
        if let (Some(p), serde_json::Value::Object(extra)) = (params.as_object_mut(), extra) {
            p.extend(extra);
        }
        let field = |k: &str| {
            params
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        tracing::info!(
            order = order_no,
            code = %field("auth_code_masked"),
            out_trade_no = %field("out_trade_no"),
            "{event}"
        );
        self.broadcast(Notification::Payment(params));
    }

    /// Numbers a notification and sends it to every client. An order's
    /// notifications come from its owner, in order, so a Payment read by
    /// the owner after notification `seq` reflects it and every earlier one.
    fn broadcast(&self, mut n: Notification) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(p) = n.params_mut().as_object_mut() {
            p.insert("seq".into(), json!(seq));
        }
        let _ = self.notify.send(n);
    }

    /// The number of the last notification sent.
    pub(crate) fn last_seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    pub(crate) fn emit_refund(&self, view: &RefundView) {
        tracing::info!(order = %view.order_no, refund_no = %view.refund_no, status = %view.status, "refund ended");
        if let Ok(params) = serde_json::to_value(view) {
            self.broadcast(Notification::Refund(params));
        }
    }

    /// A journal write failed: stop taking charges (payment-rules.md §14).
    pub(crate) fn fail_stop(&self, err: &JournalError) {
        if !self.journal_failed.swap(true, Ordering::SeqCst) {
            tracing::error!(error = %err, "journal write failed: refusing new charges until restarted");
            let mut why = self
                .journal_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *why = Some(err.to_string());
        }
    }

    /// Why the journal stopped the till, if it did.
    pub fn journal_failure(&self) -> Option<String> {
        let why = self
            .journal_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        why.clone()
    }

    pub fn journal_ok(&self) -> bool {
        !self.journal_failed.load(Ordering::SeqCst)
    }

    /// What a journal error means for the caller. A refusal by the journal's
    /// own rules goes back to the caller; anything else stops the till.
    fn journal_error(&self, e: JournalError) -> EngineError {
        match e {
            JournalError::Refused(m) => EngineError::OrderConflict(m),
            JournalError::UnknownOrder(o) => EngineError::UnknownOrder(o),
            e @ JournalError::CodeUsed(_) => EngineError::InvalidParams(format!("auth_code: {e}")),
            other => {
                self.fail_stop(&other);
                EngineError::JournalUnavailable(format!(
                    "{other}; nothing more was sent to any gateway"
                ))
            }
        }
    }

    /// `status`: the waiting order, how many sales are in flight, and how
    /// many attempts need an operator, or why the journal could not say.
    pub async fn counts(&self) -> (Option<String>, usize, Result<usize, JournalError>) {
        let (waiting, in_flight) = {
            let reg = self.registry();
            (reg.scanner.clone(), reg.in_flight.len())
        };
        let j = self.journal.clone();
        let attention = blocking(move || j.attention()).await.map(|v| v.len());
        (waiting, in_flight, attention)
    }

    /// The Payment of `order_no` now, as its owner sees it.
    pub async fn payment(self: &Arc<Self>, order_no: &str) -> Result<Payment, EngineError> {
        self.ask(order_no, |reply| Msg::Query { reply })
            .await
            .map(|(p, _)| p)
    }

    /// `watch`: the Payment of `order_no` now, with the number of the last
    /// notification it reflects. Every later change of the order comes as
    /// a notification with a higher `seq`.
    pub async fn watch(self: &Arc<Self>, order_no: &str) -> Result<(Payment, u64), EngineError> {
        self.ask(order_no, |reply| Msg::Query { reply }).await
    }

    /// Where each channel sends its requests now (primary, backup, which
    /// goes first), by channel name, for `status`.
    pub fn routes(&self) -> std::collections::BTreeMap<String, crate::gateway::Route> {
        self.channels
            .iter()
            .filter_map(|(n, g)| Some((n.to_string(), g.route()?)))
            .collect()
    }

    /// Which channel carries each provider's codes, for `status`.
    pub fn routing(&self) -> std::collections::BTreeMap<Provider, &'static str> {
        self.gateways
            .iter()
            .map(|(p, g)| (*p, g.channel()))
            .collect()
    }

    /// The gateway of the channel an attempt went through.
    pub(crate) fn channel_gateway(&self, name: &str) -> Option<Arc<dyn Gateway>> {
        self.channels.get(name).cloned()
    }

    /// The orders with an attempt in flight or waiting for a scan, sorted.
    pub fn in_flight_orders(&self) -> Vec<String> {
        let reg = self.registry();
        let mut v: Vec<String> = reg
            .in_flight
            .iter()
            .chain(reg.scanner.iter())
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The Payments of one local day. Read from the journal: a sale whose
    /// owner is busy shows as the journal has it (`paying` for an attempt
    /// in flight, `waiting_scan` while armed).
    pub async fn list(&self, date: &str) -> Result<Vec<Payment>, EngineError> {
        let j = self.journal.clone();
        let d = date.to_string();
        let day = blocking(move || {
            let sales = j.day(&d)?;
            let mut out = Vec::with_capacity(sales.len());
            for (s, a) in sales {
                let r = j.refunds_of(&s.order_no)?;
                out.push((s, a, r));
            }
            Ok(out)
        })
        .await
        .map_err(|e| EngineError::JournalUnavailable(e.to_string()))?;
        let (armed, running) = {
            let reg = self.registry();
            (reg.scanner.clone(), reg.in_flight.clone())
        };
        Ok(day
            .iter()
            .map(|(s, a, r)| {
                let live = if armed.as_deref() == Some(s.order_no.as_str()) {
                    view::Live::Armed
                } else if running.contains(&s.order_no) {
                    view::Live::Running
                } else {
                    view::Live::Idle
                };
                Payment::build(s, a, r, live)
            })
            .collect())
    }

    fn check_charge(&self, req: &ChargeRequest) -> Result<Option<AuthCode>, EngineError> {
        if !is_valid_id(&req.order_no) {
            return Err(EngineError::InvalidParams(
                "order_no must be 1-32 characters of A-Z a-z 0-9 _ -".into(),
            ));
        }
        if req.amount == 0 || req.amount > self.cfg.max_amount {
            return Err(EngineError::InvalidParams(format!(
                "amount must be 1..={} fen",
                self.cfg.max_amount
            )));
        }
        if req
            .subject
            .as_ref()
            .is_some_and(|s| s.chars().count() > 128)
        {
            return Err(EngineError::InvalidParams(
                "subject must be at most 128 characters".into(),
            ));
        }
        check_operator(req.operator_id.as_deref())?;
        let code = match &req.auth_code {
            None => None,
            Some(c) => {
                let code = crate::gateway::recognise(c.trim()).ok_or_else(|| {
                    let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                    EngineError::InvalidParams(format!(
                        "auth_code is not a payment code of any provider ({})",
                        names.join(", ")
                    ))
                })?;
                if !self.gateways.contains_key(&code.provider()) {
                    return Err(EngineError::ProviderUnavailable(code.provider()));
                }
                Some(code)
            }
        };
        if !self.journal_ok() {
            return Err(EngineError::JournalUnavailable(
                "the journal failed earlier; nothing was sent to any gateway".into(),
            ));
        }
        Ok(code)
    }

    /// Charges a sale and answers when it has ended (docs/pos-protocol.md `charge`).
    /// The order's owner runs the payment: a caller that goes away does not
    /// stop it, and its result stays queryable.
    pub async fn charge(self: &Arc<Self>, req: ChargeRequest) -> Result<Payment, EngineError> {
        let code = self.check_charge(&req)?;
        let order_no = req.order_no.clone();
        self.ask(&order_no, |reply| Msg::Charge { req, code, reply })
            .await
    }

    /// Cancels a sale (docs/pos-protocol.md `cancel`) and answers once it is final.
    pub async fn cancel(self: &Arc<Self>, order_no: &str) -> Result<Payment, EngineError> {
        self.ask(order_no, |reply| Msg::Cancel { reply }).await
    }

    /// Resumes every unfinished attempt and refund (payment-rules.md §15, 17); call
    /// before taking charges. Each goes to its order's owner, so a request
    /// that arrives meanwhile waits its turn behind it.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, EngineError> {
        recovery::recover(self).await
    }

    /// Refunds part or all of a paid sale (payment-rules.md §17). Answers on the
    /// gateway's first answer; an accepted refund is confirmed in the
    /// background and ends with a `refund.event`.
    pub async fn refund(
        self: &Arc<Self>,
        order_no: &str,
        refund_no: &str,
        amount: u64,
        reason: Option<String>,
        operator_id: Option<String>,
    ) -> Result<RefundView, EngineError> {
        check_operator(operator_id.as_deref())?;
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
        // WeChat's refund_desc takes at most 80 characters (Alipay's 256).
        if reason.as_ref().is_some_and(|r| r.chars().count() > 80) {
            return Err(EngineError::InvalidParams(
                "reason must be at most 80 characters".into(),
            ));
        }
        if !self.journal_ok() {
            return Err(EngineError::JournalUnavailable(
                "the journal failed earlier".into(),
            ));
        }
        let refund_no = refund_no.to_string();
        self.ask(order_no, |reply| Msg::Refund {
            asked: refunds::Asked {
                refund_no,
                amount,
                reason,
                operator_id,
            },
            reply,
        })
        .await
    }

    /// An operator's verdict on an attempt that needs attention, through
    /// the order's owner (the daemon's side of `tillpay journal resolve`).
    pub async fn resolve(self: &Arc<Self>, req: ResolveRequest) -> Result<Payment, EngineError> {
        let order_no = req.order_no.clone();
        self.ask(&order_no, |reply| Msg::Resolve { req, reply })
            .await
    }
}

/// A cashier's id: the same alphabet as an order number, so it fits the
/// gateways' operator fields (Alipay's takes 28 characters, an acquirer's 32).
fn check_operator(operator_id: Option<&str>) -> Result<(), EngineError> {
    match operator_id {
        Some(o) if !is_valid_id(o) => Err(EngineError::InvalidParams(
            "operator_id must be 1-32 characters of A-Z a-z 0-9 _ -".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
