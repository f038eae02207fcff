//! The owner of one order: a task with a mailbox. It takes the order's
//! requests one at a time, steps the sale machine with each, and carries
//! out what the machine says; it also drives the order's attempt and
//! refunds ([`AttemptRun`], [`RefundRun`]), with at most one gateway call
//! in flight. While a call is on the wire the owner still answers: a
//! cancel is journaled at once and the call's answer sees it.
//!
//! The owner lives while the order has live work (a charge waiting, an
//! attempt or a refund in flight, a client waiting) and retires when idle;
//! the next request starts a fresh one from the journal.
//!
//! This file holds the mailbox and the loop; [`requests`] answers the POS's
//! requests, [`round`] carries out what the sale machine decides.

mod requests;
mod round;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::attempt::AttemptRun;
use super::refunds::{self, RefundRun};
use super::resolve::ResolveRequest;
use super::{blocking, ChargeRequest, Engine, EngineError, Payment, RefundView, ScanOutcome};
use crate::domain::AuthCode;
use crate::journal::{AttemptRow, JournalError, RefundRow};
use crate::machine::sale::{SaleEvent, SalePhase};
use crate::machine::Event;

pub(super) type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// A request for the owner.
pub(super) enum Msg {
    Charge {
        req: ChargeRequest,
        code: Option<AuthCode>,
        reply: Reply<Payment>,
    },
    Scan {
        code: AuthCode,
        reply: oneshot::Sender<ScanOutcome>,
    },
    Cancel {
        reply: Reply<Payment>,
    },
    /// The Payment, with the last notification number it reflects.
    Query {
        reply: Reply<(Payment, u64)>,
    },
    Refund {
        asked: refunds::Asked,
        reply: Reply<RefundView>,
    },
    Resolve {
        req: ResolveRequest,
        reply: Reply<Payment>,
    },
    ResumeAttempt(AttemptRow),
    ResumeRefund(RefundRow),
}

/// What a gateway call brings back, for the run that made it.
pub(super) enum Answer {
    Attempt(Event),
    Refund {
        refund_no: String,
        event: crate::machine::refund::RefundEvent,
    },
}

pub(super) type Call = Pin<Box<dyn Future<Output = Answer> + Send>>;

struct Owner {
    engine: Arc<Engine>,
    order_no: String,
    sale: SalePhase,
    /// Clients answered when the round ends: the charge, and any cancel.
    waiters: Vec<Reply<Payment>>,
    /// Why the round ended without a Payment to show (nothing sent, or
    /// the journal failed under the attempt).
    round_error: Option<EngineError>,
    scan_deadline: Option<Instant>,
    attempt: Option<AttemptRun>,
    refunds: Vec<RefundRun>,
    /// The one gateway call on the wire.
    call: Option<Call>,
}

/// If an owner panics (a bug, say in reading a gateway's answer), its
/// order's live state dies with it: the till fail-stops, as on a journal
/// failure, and lets go of what the owner held. The watchdog then stops
/// and systemd restarts tillpay, whose recovery resumes the order.
struct PanicGuard {
    engine: Arc<Engine>,
    order_no: String,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let e = JournalError::Internal(format!("the owner of order {} failed", self.order_no));
        tracing::error!(order = %self.order_no, "order owner panicked: fail-stop");
        self.engine.fail_stop(&e);
        let mut reg = self.engine.registry();
        if reg.scanner.as_deref() == Some(self.order_no.as_str()) {
            reg.scanner = None;
        }
        reg.in_flight.remove(&self.order_no);
        reg.owners.remove(&self.order_no);
    }
}

pub(super) fn spawn(engine: Arc<Engine>, order_no: String, rx: mpsc::UnboundedReceiver<Msg>) {
    tokio::spawn(async move {
        let _guard = PanicGuard {
            engine: engine.clone(),
            order_no: order_no.clone(),
        };
        let sale = match load_phase(&engine, &order_no).await {
            Ok(p) => p,
            Err(e) => {
                // Nothing can be decided without the journal: every request
                // gets the error, and the next one tries again.
                let err = engine.journal_error(e);
                refuse_all(&engine, &order_no, rx, err);
                return;
            }
        };
        let owner = Owner {
            engine,
            order_no,
            sale,
            waiters: Vec::new(),
            round_error: None,
            scan_deadline: None,
            attempt: None,
            refunds: Vec::new(),
            call: None,
        };
        owner.run(rx).await;
    });
}

async fn load_phase(engine: &Arc<Engine>, order_no: &str) -> Result<SalePhase, JournalError> {
    let j = engine.journal().clone();
    let o = order_no.to_string();
    let sale = blocking(move || j.sale(&o)).await?;
    let phases: Vec<_> = sale
        .map(|(_, attempts)| attempts.iter().map(|a| a.state.phase).collect())
        .unwrap_or_default();
    Ok(SalePhase::from_attempts(&phases))
}

/// Answers every queued request with `err` and retires.
fn refuse_all(
    engine: &Arc<Engine>,
    order_no: &str,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    err: EngineError,
) {
    let mut reg = engine.registry();
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Charge { reply, .. } | Msg::Cancel { reply } | Msg::Resolve { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Msg::Query { reply } => {
                let _ = reply.send(Err(err.clone()));
            }
            Msg::Refund { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Msg::Scan { reply, .. } => {
                let _ = reply.send(ScanOutcome::Ignored(err.to_string()));
            }
            Msg::ResumeAttempt(row) => {
                tracing::error!(order = %order_no, out_trade_no = %row.out_trade_no, error = %err,
                    "cannot resume the attempt now: the journal cannot be read; it is resumed at the next start");
            }
            Msg::ResumeRefund(row) => {
                tracing::error!(order = %order_no, refund_no = %row.refund_no, error = %err,
                    "cannot resume the refund now: the journal cannot be read; it is resumed at the next start");
            }
        }
    }
    reg.owners.remove(order_no);
}

async fn next_call(call: &mut Option<Call>) -> Answer {
    match call {
        Some(c) => c.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Owner {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let due = if self.call.is_none() {
                self.next_due()
            } else {
                None
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg).await,
                    None => return,
                },
                answer = next_call(&mut self.call) => {
                    self.call = None;
                    self.on_answer(answer).await;
                }
                _ = sleep_until(due) => self.start_due_call(),
                _ = sleep_until(self.scan_deadline) => {
                    self.scan_deadline = None;
                    self.sale_step(SaleEvent::ScanTimedOut).await;
                }
            }
            if self.idle() && self.retire(&mut rx) {
                return;
            }
        }
    }

    fn idle(&self) -> bool {
        self.attempt.is_none()
            && self.refunds.is_empty()
            && self.call.is_none()
            && self.waiters.is_empty()
            && self.sale != SalePhase::WaitingScan
    }

    /// Leaves the registry if no request is queued; under the registry
    /// lock, so no request can slip in between.
    fn retire(&self, rx: &mut mpsc::UnboundedReceiver<Msg>) -> bool {
        let mut reg = self.engine.registry();
        if !rx.is_empty() {
            return false;
        }
        reg.owners.remove(&self.order_no);
        true
    }

    /// The earliest scheduled gateway call of the attempt or a refund.
    fn next_due(&self) -> Option<Instant> {
        let a = self.attempt.as_ref().and_then(AttemptRun::due);
        let r = self.refunds.iter().filter_map(RefundRun::due).min();
        match (a, r) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }

    fn start_due_call(&mut self) {
        let now = Instant::now();
        if let Some(run) = self
            .attempt
            .as_mut()
            .filter(|r| r.due().is_some_and(|d| d <= now))
        {
            self.call = Some(run.start_call());
            return;
        }
        if let Some(run) = self
            .refunds
            .iter_mut()
            .filter(|r| r.due().is_some_and(|d| d <= now))
            .min_by_key(|r| r.due())
        {
            self.call = Some(run.start_call());
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Charge { req, code, reply } => self.charge(req, code, reply).await,
            Msg::Scan { code, reply } => self.scan(code, reply).await,
            Msg::Cancel { reply } => self.cancel(reply).await,
            Msg::Query { reply } => {
                // Read before the journal: the owner sends nothing while it
                // reads, so the Payment reflects every notification up to it.
                let seq = self.engine.last_seq();
                let p = self.payment().await;
                let _ = reply.send(p.map(|p| (p, seq)));
            }
            Msg::Refund { asked, reply } => {
                let attempt_idle = self.attempt.is_none();
                match refunds::open(&self.engine, &self.order_no, asked, attempt_idle).await {
                    Ok(refunds::Opened::Answer(view)) => {
                        let _ = reply.send(Ok(view));
                    }
                    Ok(refunds::Opened::Run(mut run)) => {
                        run.reply = Some(reply);
                        self.add_refund(*run);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Msg::Resolve { req, reply } => {
                let r = self.resolve(req).await;
                let _ = reply.send(r);
            }
            Msg::ResumeAttempt(row) => self.resume_attempt(row).await,
            Msg::ResumeRefund(row) => {
                if let Some(run) = refunds::resume(&self.engine, row).await {
                    self.add_refund(run);
                }
            }
        }
    }

    /// Adds a refund run, unless one of the same number runs already (that
    /// one carries on; the newcomer had nobody waiting that it would not).
    fn add_refund(&mut self, run: RefundRun) {
        if self
            .refunds
            .iter()
            .any(|r| r.refund_no() == run.refund_no())
        {
            return;
        }
        self.refunds.push(run);
    }

    async fn on_answer(&mut self, answer: Answer) {
        match answer {
            Answer::Attempt(ev) => {
                if let Some(run) = self.attempt.as_mut() {
                    let fed = run.answered(&self.engine, ev).await;
                    self.after_attempt_step(fed).await;
                }
            }
            Answer::Refund { refund_no, event } => {
                if let Some(i) = self.refunds.iter().position(|r| r.refund_no() == refund_no) {
                    let done = self.refunds[i].feed(&self.engine, event).await;
                    if done {
                        self.refunds.remove(i);
                    }
                }
            }
        }
    }
}

pub(super) fn unresolved() -> EngineError {
    EngineError::PaymentUnresolved(
        "the journal failed mid-payment: the code was sent, so the sale is NOT settled; take no \
         other payment for it; tillpay resumes it (query, then revoke) when it restarts"
            .into(),
    )
}
