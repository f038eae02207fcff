//! The payment engine: sales and their attempts, driven by the pure state
//! machine in [`machine`], journaled before every gateway call, run as
//! tokio tasks. The POS socket and the scanner call into it; gateways sit
//! behind the [`Gateway`] trait.

pub mod machine;
mod recovery;
mod refund;
pub mod view;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::PaymentConfig;
use crate::domain::{is_valid_id, AuthCode, Fen, Provider};
use crate::gateway::Gateway;
use crate::journal::{Journal, JournalError};

pub use view::{EngineError, Notification, Payment, PaymentStatus, RefundView};

/// A charge as the POS asks for it.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub order_no: String,
    pub amount: u64,
    pub subject: Option<String>,
    /// Typed in by hand; without it the charge waits for the scanner.
    pub auth_code: Option<String>,
}

/// What happened to a scanned payment code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Handed to the charge that was waiting.
    Taken { order_no: String },
    /// Charged nothing; the reason is for the cashier.
    Ignored(String),
}

enum ScanWait {
    /// The code, and the sale's place in `running`, taken under the same
    /// lock as the armed entry so that a cancel can never fall between.
    Scanned(AuthCode, Slot),
    /// With the slot that `cancel` waits on.
    Cancelled(Slot),
}

struct Armed {
    order_no: String,
    tx: oneshot::Sender<ScanWait>,
}

/// The worker's ends of a sale's `running` entry.
struct Slot {
    order_no: String,
    cancel_rx: mpsc::UnboundedReceiver<()>,
    done_tx: watch::Sender<bool>,
}

struct Running {
    cancel: mpsc::UnboundedSender<()>,
    done: watch::Receiver<bool>,
}

#[derive(Default)]
struct Live {
    armed: Option<Armed>,
    /// Sales with an attempt in flight, by order_no.
    running: HashMap<String, Running>,
}

pub struct Engine {
    journal: Arc<Journal>,
    gateways: HashMap<Provider, Arc<dyn Gateway>>,
    cfg: PaymentConfig,
    notify: broadcast::Sender<Notification>,
    live: Mutex<Live>,
    /// Set on the first journal I/O error: no new charges (POLICY 14).
    journal_failed: AtomicBool,
}

/// Runs blocking journal work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JournalError> + Send + 'static,
) -> Result<T, JournalError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(JournalError::Conflict(format!("journal task failed: {e}"))),
    }
}

impl Engine {
    pub fn new(
        journal: Arc<Journal>,
        gateways: Vec<Arc<dyn Gateway>>,
        cfg: PaymentConfig,
    ) -> Arc<Engine> {
        let (notify, _) = broadcast::channel(256);
        Arc::new(Engine {
            journal,
            gateways: gateways.into_iter().map(|g| (g.provider(), g)).collect(),
            cfg,
            notify,
            live: Mutex::new(Live::default()),
            journal_failed: AtomicBool::new(false),
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

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a sale in `running` (the caller holds the lock): from here a
    /// cancel reaches whatever runs it.
    fn reserve(live: &mut Live, order_no: &str) -> Slot {
        let (cancel, cancel_rx) = mpsc::unbounded_channel();
        let (done_tx, done) = watch::channel(false);
        live.running
            .insert(order_no.to_string(), Running { cancel, done });
        Slot {
            order_no: order_no.to_string(),
            cancel_rx,
            done_tx,
        }
    }

    /// Takes a sale out of `running` and wakes whoever waits for it.
    fn release(&self, slot: &Slot) {
        self.live().running.remove(&slot.order_no);
        let _ = slot.done_tx.send(true);
    }

    fn live_state(&self, order_no: &str) -> view::Live {
        let live = self.live();
        if live.armed.as_ref().is_some_and(|a| a.order_no == order_no) {
            view::Live::Armed
        } else if live.running.contains_key(order_no) {
            view::Live::Running
        } else {
            view::Live::Idle
        }
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
        let _ = self.notify.send(Notification::Payment(params));
    }

    pub fn emit_scanner(&self, event: &str, extra: serde_json::Value) {
        let mut params = json!({"event": event});
        if let (Some(p), serde_json::Value::Object(extra)) = (params.as_object_mut(), extra) {
            p.extend(extra);
        }
        let _ = self.notify.send(Notification::Scanner(params));
    }

    /// A journal write failed: stop taking charges (POLICY 14).
    pub(crate) fn fail_stop(&self, err: &JournalError) {
        if !self.journal_failed.swap(true, Ordering::SeqCst) {
            tracing::error!(error = %err, "journal write failed: refusing new charges until restarted");
        }
    }

    pub fn journal_ok(&self) -> bool {
        !self.journal_failed.load(Ordering::SeqCst)
    }

    /// `(waiting order, in-flight count, needs-attention count)` for `status`.
    pub async fn counts(&self) -> (Option<String>, usize, usize) {
        let (waiting, in_flight) = {
            let live = self.live();
            (
                live.armed.as_ref().map(|a| a.order_no.clone()),
                live.running.len(),
            )
        };
        let j = self.journal.clone();
        let attention = blocking(move || j.attention()).await.map_or(0, |v| v.len());
        (waiting, in_flight, attention)
    }

    /// The Payment of `order_no` as the journal has it now.
    pub async fn payment(&self, order_no: &str) -> Result<Payment, EngineError> {
        let j = self.journal.clone();
        let o = order_no.to_string();
        let found = blocking(move || {
            let sale = j.sale(&o)?;
            let refunds = j.refunds_of(&o)?;
            Ok(sale.map(|s| (s, refunds)))
        })
        .await
        .map_err(|e| EngineError::JournalUnavailable(e.to_string()))?;
        let ((sale, attempts), refunds) =
            found.ok_or_else(|| EngineError::UnknownOrder(order_no.to_string()))?;
        Ok(Payment::build(
            &sale,
            &attempts,
            &refunds,
            self.live_state(order_no),
        ))
    }

    /// The Payments of one local day.
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
        Ok(day
            .iter()
            .map(|(s, a, r)| Payment::build(s, a, r, self.live_state(&s.order_no)))
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
        let code = match &req.auth_code {
            None => None,
            Some(c) => {
                let code = AuthCode::parse(c.trim()).ok_or_else(|| {
                    EngineError::InvalidParams(
                        "auth_code is not a WeChat or Alipay payment code".into(),
                    )
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

    /// Charges a sale and answers when it has ended (CONTRACT §3 `charge`).
    /// The work runs in its own task: a caller that goes away does not stop
    /// the payment, and its result stays queryable.
    pub async fn charge(self: &Arc<Self>, req: ChargeRequest) -> Result<Payment, EngineError> {
        let code = self.check_charge(&req)?;
        let order_no = req.order_no.clone();
        let order_no_for_err = order_no.clone();
        {
            let live = self.live();
            if live.running.contains_key(&order_no) {
                return Err(EngineError::OrderConflict(format!(
                    "order {order_no} is still in flight"
                )));
            }
            if live.armed.as_ref().is_some_and(|a| a.order_no == order_no) {
                return Err(EngineError::OrderConflict(format!(
                    "order {order_no} is already waiting for a scan"
                )));
            }
        }
        let j = self.journal.clone();
        let (o, amount) = (order_no.clone(), Fen(req.amount));
        let subject = req.subject.clone().unwrap_or_default();
        let existing = blocking(move || j.sale(&o))
            .await
            .map_err(|e| self.journal_error(e))?;
        if let Some((sale, attempts)) = &existing {
            if sale.amount != amount {
                return Err(EngineError::OrderConflict(format!(
                    "order {order_no} exists with amount {} fen",
                    sale.amount.0
                )));
            }
            if attempts
                .iter()
                .any(|a| a.state.phase == machine::Phase::Paid)
            {
                // Already paid: answer at once, charge nothing.
                return self.payment(&order_no).await;
            }
            if attempts.iter().any(|a| !a.state.phase.is_final()) {
                return Err(EngineError::OrderConflict(format!(
                    "order {order_no} is still in flight"
                )));
            }
            if attempts
                .iter()
                .any(|a| a.state.phase == machine::Phase::NeedsAttention)
            {
                return Err(EngineError::OrderConflict(format!(
                    "order {order_no} needs an operator first (tillpay journal attention)"
                )));
            }
        }
        // After the checks above: resending the charge of a paid sale with
        // its own code answers with that Payment, not "code already used".
        if let Some(c) = &code {
            if let Some(why) = self.used_before(c).await? {
                return Err(EngineError::InvalidParams(format!("auth_code: {why}")));
            }
        }
        let slot = {
            let mut live = self.live();
            if live.running.contains_key(&order_no)
                || live.armed.as_ref().is_some_and(|a| a.order_no == order_no)
            {
                return Err(EngineError::OrderConflict(format!(
                    "order {order_no} is already being charged"
                )));
            }
            match code {
                Some(_) => Some(Self::reserve(&mut live, &order_no)),
                None if live.armed.is_some() => return Err(EngineError::Busy),
                None => None,
            }
        };
        let j = self.journal.clone();
        let o = order_no.clone();
        if let Err(e) = blocking(move || j.ensure_sale(&o, amount, &subject)).await {
            if let Some(slot) = &slot {
                self.release(slot);
            }
            return Err(self.journal_error(e));
        }

        let (result_tx, result_rx) = oneshot::channel();
        match code.zip(slot) {
            Some((code, slot)) => {
                let engine = self.clone();
                tokio::spawn(async move {
                    let r = engine.start_attempt(code, slot).await;
                    let _ = result_tx.send(r);
                });
            }
            None => {
                let (scan_tx, scan_rx) = oneshot::channel();
                {
                    let mut live = self.live();
                    if live.armed.is_some() {
                        return Err(EngineError::Busy);
                    }
                    live.armed = Some(Armed {
                        order_no: order_no.clone(),
                        tx: scan_tx,
                    });
                }
                self.emit_payment(&order_no, "waiting_scan", json!({"amount": req.amount}));
                let engine = self.clone();
                tokio::spawn(async move {
                    let r = engine.wait_for_scan(&order_no, scan_rx).await;
                    let _ = result_tx.send(r);
                });
            }
        }
        result_rx.await.unwrap_or_else(|_| {
            Err(EngineError::PaymentUnresolved(format!(
                "the charge of {order_no_for_err} ended without an answer; query the order"
            )))
        })
    }

    fn journal_error(&self, e: JournalError) -> EngineError {
        match e {
            JournalError::Conflict(m) => EngineError::OrderConflict(m),
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

    async fn wait_for_scan(
        self: &Arc<Self>,
        order_no: &str,
        rx: oneshot::Receiver<ScanWait>,
    ) -> Result<Payment, EngineError> {
        let outcome = tokio::time::timeout(self.cfg.scan_timeout, rx).await;
        {
            let mut live = self.live();
            if live.armed.as_ref().is_some_and(|a| a.order_no == order_no) {
                live.armed = None;
            }
        }
        match outcome {
            Ok(Ok(ScanWait::Scanned(code, slot))) => self.start_attempt(code, slot).await,
            Ok(Ok(ScanWait::Cancelled(slot))) => {
                self.end_unscanned(order_no, "cancelled by the cashier", Some(&slot))
                    .await
            }
            Ok(Err(_)) | Err(_) => {
                self.end_unscanned(order_no, "no code was scanned in time", None)
                    .await
            }
        }
    }

    async fn end_unscanned(
        &self,
        order_no: &str,
        why: &'static str,
        slot: Option<&Slot>,
    ) -> Result<Payment, EngineError> {
        let j = self.journal.clone();
        let o = order_no.to_string();
        let r = blocking(move || j.cancel_sale(&o, why)).await;
        if let Some(slot) = slot {
            self.release(slot);
        }
        r.map_err(|e| self.journal_error(e))?;
        self.emit_payment(order_no, "cancelled", json!({"reason": why}));
        self.payment(order_no).await
    }

    /// Journals a new attempt (before any byte leaves, POLICY 3), runs it,
    /// and answers with the final Payment. A cancel that came before the
    /// attempt was journaled ends the sale with nothing sent.
    async fn start_attempt(
        self: &Arc<Self>,
        code: AuthCode,
        mut slot: Slot,
    ) -> Result<Payment, EngineError> {
        let order_no = slot.order_no.clone();
        let Some(gateway) = self.gateways.get(&code.provider()).cloned() else {
            self.release(&slot);
            return Err(EngineError::ProviderUnavailable(code.provider()));
        };
        if slot.cancel_rx.try_recv().is_ok() {
            return self
                .end_unscanned(&order_no, "cancelled by the cashier", Some(&slot))
                .await;
        }
        // A charge armed before another attempt hit a journal failure: the
        // till is fail-stopped (POLICY 14), so this code is not sent either.
        if !self.journal_ok() {
            self.release(&slot);
            return Err(EngineError::JournalUnavailable(
                "the journal failed earlier; nothing was sent; restart tillpay".into(),
            ));
        }
        let j = self.journal.clone();
        let o = order_no.clone();
        let c = code.clone();
        let started = blocking(move || {
            let row = j.begin_attempt(&o, &c)?;
            let subject = j.sale(&o)?.map(|(s, _)| s.subject).unwrap_or_default();
            Ok((row, subject))
        })
        .await;
        let (row, subject) = match started {
            Ok(r) => r,
            Err(e) => {
                self.release(&slot);
                return Err(self.journal_error(e));
            }
        };
        let req = crate::gateway::PayRequest {
            out_trade_no: row.out_trade_no.clone(),
            amount: row.amount,
            auth_code: code,
            subject,
        };
        let done = slot.done_tx.subscribe();
        self.launch(row, gateway, worker::First::Pay(req), slot);
        self.await_done(&order_no, done).await
    }

    /// Starts the worker of an attempt in its reserved slot. The slot is
    /// released when the worker ends, even by a panic.
    fn launch(
        self: &Arc<Self>,
        row: crate::journal::AttemptRow,
        gateway: Arc<dyn Gateway>,
        first: worker::First,
        slot: Slot,
    ) {
        struct Release(Arc<Engine>, String, watch::Sender<bool>);
        impl Drop for Release {
            fn drop(&mut self) {
                self.0.live().running.remove(&self.1);
                let _ = self.2.send(true);
            }
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let _release = Release(engine.clone(), slot.order_no, slot.done_tx);
            worker::run(&engine, row, gateway, first, slot.cancel_rx).await;
        });
    }

    async fn await_done(
        &self,
        order_no: &str,
        mut done: watch::Receiver<bool>,
    ) -> Result<Payment, EngineError> {
        let _ = done.wait_for(|d| *d).await;
        let unresolved = || {
            EngineError::PaymentUnresolved(
                "the journal failed mid-payment: the code was sent, so the sale is NOT settled; \
                 take no other payment for it; tillpay resumes it (query, then revoke) when it \
                 restarts"
                    .into(),
            )
        };
        let p = self.payment(order_no).await.map_err(|e| match e {
            EngineError::JournalUnavailable(_) => unresolved(),
            other => other,
        })?;
        if !p.status.is_final() && !self.journal_ok() {
            return Err(unresolved());
        }
        Ok(p)
    }

    /// A code from the scanner: to the waiting charge, or ignored. Does
    /// not look at the journal: [`Engine::scan`] does that first.
    pub(crate) fn scanned(&self, code: AuthCode) -> ScanOutcome {
        let mut live = self.live();
        let Some(armed) = live.armed.take() else {
            let why = if live.running.is_empty() {
                "no charge waiting"
            } else {
                "a charge is already paying"
            };
            return ScanOutcome::Ignored(why.into());
        };
        if !self.gateways.contains_key(&code.provider()) {
            live.armed = Some(armed);
            return ScanOutcome::Ignored(format!(
                "{} is not configured on this till",
                code.provider()
            ));
        }
        let order_no = armed.order_no.clone();
        let slot = Self::reserve(&mut live, &order_no);
        self.emit_payment(
            &order_no,
            "scanned",
            json!({"provider": code.provider(), "auth_code_masked": code.masked()}),
        );
        match armed.tx.send(ScanWait::Scanned(code, slot)) {
            Ok(()) => ScanOutcome::Taken { order_no },
            Err(ScanWait::Scanned(_, slot)) => {
                live.running.remove(&slot.order_no);
                let _ = slot.done_tx.send(true);
                ScanOutcome::Ignored("no charge waiting".into())
            }
            Err(ScanWait::Cancelled(_)) => ScanOutcome::Ignored("no charge waiting".into()),
        }
    }

    /// Why `code` must not be sent: an earlier attempt sent it (payment
    /// codes are single-use at both gateways).
    async fn used_before(&self, code: &AuthCode) -> Result<Option<String>, EngineError> {
        let (j, c) = (self.journal.clone(), code.clone());
        let used = blocking(move || j.code_used(&c))
            .await
            .map_err(|e| self.journal_error(e))?;
        Ok(used.map(|first| JournalError::CodeUsed(first).to_string()))
    }

    /// A code from the scanner: refused if an earlier attempt sent it,
    /// else [`Engine::scanned`]. The journal is read before the engine's
    /// state is locked, so a slow disk never holds up the rest.
    pub async fn scan(&self, code: AuthCode) -> ScanOutcome {
        match self.used_before(&code).await {
            Ok(None) => self.scanned(code),
            Ok(Some(why)) => ScanOutcome::Ignored(why),
            Err(e) => ScanOutcome::Ignored(e.to_string()),
        }
    }

    /// Cancels a sale (CONTRACT §3 `cancel`) and answers once it is final.
    pub async fn cancel(&self, order_no: &str) -> Result<Payment, EngineError> {
        let running = {
            let mut live = self.live();
            if live.armed.as_ref().is_some_and(|a| a.order_no == order_no) {
                // The waiting charge ends the sale and releases this slot.
                let slot = Self::reserve(&mut live, order_no);
                let done = slot.done_tx.subscribe();
                match live
                    .armed
                    .take()
                    .map(|a| a.tx.send(ScanWait::Cancelled(slot)))
                {
                    Some(Ok(())) => None,
                    _ => {
                        live.running.remove(order_no);
                        None
                    }
                }
                .or(Some((None, done)))
            } else {
                live.running
                    .get(order_no)
                    .map(|r| (Some(r.cancel.clone()), r.done.clone()))
            }
        };
        match running {
            Some((cancel, done)) => {
                if let Some(cancel) = cancel {
                    let _ = cancel.send(());
                }
                self.await_done(order_no, done).await
            }
            None => self.payment(order_no).await,
        }
    }

    /// Resumes every unfinished attempt (POLICY 15); call before taking charges.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, EngineError> {
        recovery::recover(self).await
    }

    /// Refunds part or all of a paid sale (POLICY 17).
    pub async fn refund(
        self: &Arc<Self>,
        order_no: &str,
        refund_no: &str,
        amount: u64,
        reason: Option<String>,
    ) -> Result<RefundView, EngineError> {
        refund::refund(self, order_no, refund_no, amount, reason).await
    }

    pub fn has_provider(&self, p: Provider) -> bool {
        self.gateways.contains_key(&p)
    }
}

#[cfg(test)]
mod tests;
