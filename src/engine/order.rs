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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::attempt::{AttemptRun, Fed};
use super::machine::sale::{self, Refusal, SaleAction, SaleEvent, SalePhase};
use super::machine::Event;
use super::refunds::{self, RefundRun};
use super::resolve::{self, ResolveError, ResolveRequest};
use super::{blocking, view, ChargeRequest, Engine, EngineError, Payment, RefundView, ScanOutcome};
use crate::domain::AuthCode;
use crate::journal::{AttemptRow, JournalError, RefundRow};

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
    Query {
        reply: Reply<Payment>,
    },
    Refund {
        refund_no: String,
        amount: u64,
        reason: Option<String>,
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
        event: super::machine::refund::RefundEvent,
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
            Msg::Charge { reply, .. }
            | Msg::Cancel { reply }
            | Msg::Query { reply }
            | Msg::Resolve { reply, .. } => {
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
                let p = self.payment().await;
                let _ = reply.send(p);
            }
            Msg::Refund {
                refund_no,
                amount,
                reason,
                reply,
            } => {
                let asked = refunds::Asked {
                    refund_no,
                    amount,
                    reason,
                };
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

    async fn charge(&mut self, req: ChargeRequest, code: Option<AuthCode>, reply: Reply<Payment>) {
        let j = self.engine.journal().clone();
        let o = self.order_no.clone();
        let checked = {
            let code = code.clone();
            blocking(move || {
                let sale = j.sale(&o)?;
                let used = match &code {
                    Some(c) => j.code_used(c)?,
                    None => None,
                };
                Ok((sale, used))
            })
            .await
        };
        let (sale, used) = match checked {
            Ok(x) => x,
            Err(e) => {
                let _ = reply.send(Err(self.engine.journal_error(e)));
                return;
            }
        };
        let amount_matches = sale.as_ref().is_none_or(|(s, _)| s.amount.0 == req.amount);
        let claimed = code.is_none() && self.engine.claim_scanner(&self.order_no);
        let ev = SaleEvent::Charge {
            amount_matches,
            typed: code.is_some(),
            code_used: used.is_some(),
            scanner_free: claimed,
        };
        let (next, actions) = sale::step(self.sale, ev);
        if claimed && !actions.contains(&SaleAction::Arm) {
            self.engine.release_scanner(&self.order_no);
        }
        let starts = actions
            .iter()
            .any(|a| matches!(a, SaleAction::Arm | SaleAction::StartAttempt));
        if actions.contains(&SaleAction::StartAttempt) {
            // Seen in flight (by `list`, `status`) from now, not only once
            // the attempt is journaled.
            self.engine.set_in_flight(&self.order_no, true);
        }
        if starts {
            // The sale row exists before anything else is journaled.
            let j = self.engine.journal().clone();
            let (o, amount) = (self.order_no.clone(), crate::domain::Fen(req.amount));
            let subject = req.subject.clone().unwrap_or_default();
            let arm = actions.contains(&SaleAction::Arm);
            let opened = blocking(move || {
                j.ensure_sale(&o, amount, &subject)?;
                if arm {
                    j.arm(&o)?;
                }
                Ok(())
            })
            .await;
            if let Err(e) = opened {
                if claimed {
                    self.engine.release_scanner(&self.order_no);
                }
                self.engine.set_in_flight(&self.order_no, false);
                let _ = reply.send(Err(self.engine.journal_error(e)));
                return;
            }
        }
        let mut reply = Some(reply);
        self.sale = next;
        for action in actions {
            match action {
                SaleAction::Refuse(why) => {
                    let err = self.refusal(why, &req, used.as_deref());
                    if let Some(r) = reply.take() {
                        let _ = r.send(Err(err));
                    }
                }
                SaleAction::AnswerNow => {
                    let p = self.payment().await;
                    if let Some(r) = reply.take() {
                        let _ = r.send(p);
                    }
                }
                SaleAction::Wait => {
                    if let Some(r) = reply.take() {
                        self.round_error = None;
                        self.waiters.push(r);
                    }
                }
                SaleAction::Arm => {
                    self.scan_deadline = Some(Instant::now() + self.engine.cfg.scan_timeout);
                    self.engine.emit_payment(
                        &self.order_no,
                        "waiting_scan",
                        json!({"amount": req.amount}),
                    );
                }
                SaleAction::StartAttempt => {
                    if let Some(code) = code.clone() {
                        self.start_attempt(code).await;
                    }
                }
                other => self.carry_out(other).await,
            }
        }
    }

    fn refusal(&self, why: Refusal, req: &ChargeRequest, used_by: Option<&str>) -> EngineError {
        let o = &self.order_no;
        match why {
            Refusal::Busy => EngineError::Busy,
            Refusal::AmountConflict => EngineError::OrderConflict(format!(
                "order {o} exists with another amount than {} fen",
                req.amount
            )),
            Refusal::WaitingScan => {
                EngineError::OrderConflict(format!("order {o} is already waiting for a scan"))
            }
            Refusal::InFlight => {
                EngineError::OrderConflict(format!("order {o} is still in flight"))
            }
            Refusal::NeedsOperator => EngineError::OrderConflict(format!(
                "order {o} needs an operator first (tillpay journal attention)"
            )),
            Refusal::CodeUsed => EngineError::InvalidParams(format!(
                "auth_code: {}",
                JournalError::CodeUsed(used_by.unwrap_or("?").to_string())
            )),
            Refusal::Unresolved => unresolved(),
        }
    }

    async fn scan(&mut self, code: AuthCode, reply: oneshot::Sender<ScanOutcome>) {
        let j = self.engine.journal().clone();
        let c = code.clone();
        let used = match blocking(move || j.code_used(&c)).await {
            Ok(u) => u,
            Err(e) => {
                let _ = reply.send(ScanOutcome::Ignored(
                    self.engine.journal_error(e).to_string(),
                ));
                return;
            }
        };
        let (next, actions) = sale::step(
            self.sale,
            SaleEvent::Scanned {
                code_used: used.is_some(),
            },
        );
        self.sale = next;
        if actions.contains(&SaleAction::StartAttempt) {
            // In flight before the scanner is let go: no moment shows the
            // sale idle between the scan and its attempt.
            self.engine.set_in_flight(&self.order_no, true);
        }
        let mut reply = Some(reply);
        for action in actions {
            match action {
                SaleAction::IgnoreScan(why) => {
                    let why = match &used {
                        Some(first) => JournalError::CodeUsed(first.clone()).to_string(),
                        None => why.to_string(),
                    };
                    if let Some(r) = reply.take() {
                        let _ = r.send(ScanOutcome::Ignored(why));
                    }
                }
                SaleAction::StartAttempt => {
                    self.engine.emit_payment(
                        &self.order_no,
                        "scanned",
                        json!({"provider": code.provider(), "auth_code_masked": code.masked()}),
                    );
                    if let Some(r) = reply.take() {
                        let _ = r.send(ScanOutcome::Taken {
                            order_no: self.order_no.clone(),
                        });
                    }
                    self.start_attempt(code.clone()).await;
                }
                other => self.carry_out(other).await,
            }
        }
        if let Some(r) = reply.take() {
            let _ = r.send(ScanOutcome::Ignored("no charge waiting".into()));
        }
    }

    async fn cancel(&mut self, reply: Reply<Payment>) {
        let (next, actions) = sale::step(self.sale, SaleEvent::Cancel);
        self.sale = next;
        let mut reply = Some(reply);
        for action in actions {
            match action {
                SaleAction::AnswerNow => {
                    let p = self.payment().await.and_then(|p| {
                        // A cancel answers only with a final Payment.
                        if p.status.is_final() {
                            Ok(p)
                        } else {
                            Err(unresolved())
                        }
                    });
                    if let Some(r) = reply.take() {
                        let _ = r.send(p);
                    }
                }
                SaleAction::Wait => {
                    if let Some(r) = reply.take() {
                        self.waiters.push(r);
                    }
                }
                SaleAction::Refuse(why) => {
                    if let Some(r) = reply.take() {
                        let _ = r.send(Err(match why {
                            Refusal::Unresolved => unresolved(),
                            _ => EngineError::OrderConflict(format!(
                                "order {} cannot be cancelled now",
                                self.order_no
                            )),
                        }));
                    }
                }
                SaleAction::CancelAttempt => {
                    if let Some(run) = self.attempt.as_mut() {
                        let fed = run.feed(&self.engine, Event::CancelRequested).await;
                        self.after_attempt_step(fed).await;
                    }
                }
                other => self.carry_out(other).await,
            }
        }
    }

    /// The sale actions that do not involve the requester.
    async fn carry_out(&mut self, action: SaleAction) {
        match action {
            SaleAction::Disarm => {
                self.scan_deadline = None;
                self.engine.release_scanner(&self.order_no);
            }
            SaleAction::EndUnscanned(why) => {
                let j = self.engine.journal().clone();
                let o = self.order_no.clone();
                match blocking(move || j.cancel_sale(&o, why)).await {
                    Ok(()) => self.engine.emit_payment(
                        &self.order_no,
                        "cancelled",
                        json!({"reason": why}),
                    ),
                    Err(e) => self.round_error = Some(self.engine.journal_error(e)),
                }
            }
            SaleAction::AnswerWaiters => self.answer_waiters().await,
            // The requester's own actions are handled by its request.
            SaleAction::AnswerNow
            | SaleAction::Refuse(_)
            | SaleAction::Wait
            | SaleAction::Arm
            | SaleAction::StartAttempt
            | SaleAction::CancelAttempt
            | SaleAction::IgnoreScan(_) => {}
        }
    }

    /// Steps the sale machine with an event that has no requester.
    async fn sale_step(&mut self, ev: SaleEvent) {
        let (next, actions) = sale::step(self.sale, ev);
        self.sale = next;
        for a in actions {
            self.carry_out(a).await;
        }
    }

    async fn answer_waiters(&mut self) {
        let answer = match self.round_error.take() {
            Some(e) => Err(e),
            None => match self.payment().await {
                Ok(p) if p.status.is_final() || self.engine.journal_ok() => Ok(p),
                Ok(_) => Err(unresolved()),
                // The round may have sent a code: never "nothing was sent".
                Err(EngineError::JournalUnavailable(_)) => Err(unresolved()),
                Err(e) => Err(e),
            },
        };
        for w in self.waiters.drain(..) {
            let _ = w.send(answer.clone());
        }
    }

    /// Journals a new attempt (before any byte leaves, POLICY 3) and sends
    /// its pay request.
    async fn start_attempt(&mut self, code: AuthCode) {
        // A charge armed before another attempt hit a journal failure: the
        // till is fail-stopped (POLICY 14), so this code is not sent either.
        if !self.engine.journal_ok() {
            self.engine.set_in_flight(&self.order_no, false);
            self.round_error = Some(EngineError::JournalUnavailable(
                "the journal failed earlier; nothing was sent; restart tillpay".into(),
            ));
            return self.sale_step(SaleEvent::AttemptNotStarted).await;
        }
        self.engine.set_in_flight(&self.order_no, true);
        match AttemptRun::begin(&self.engine, &self.order_no, code).await {
            Ok((run, call)) => {
                self.attempt = Some(run);
                self.call = Some(call);
            }
            Err(e) => {
                self.engine.set_in_flight(&self.order_no, false);
                self.round_error = Some(e);
                self.sale_step(SaleEvent::AttemptNotStarted).await;
            }
        }
    }

    async fn resume_attempt(&mut self, row: AttemptRow) {
        let (run, ev) = AttemptRun::resume(&self.engine, row);
        self.engine.set_in_flight(&self.order_no, true);
        self.attempt = Some(run);
        self.sale_step(SaleEvent::Resumed).await;
        if let Some(run) = self.attempt.as_mut() {
            let fed = run.feed(&self.engine, ev).await;
            self.after_attempt_step(fed).await;
        }
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

    /// What the attempt's last step means for the sale.
    async fn after_attempt_step(&mut self, fed: Fed) {
        let ev = match fed {
            Fed::Running => return,
            Fed::Ended(phase) => SaleEvent::AttemptEnded(phase),
            Fed::Halted => {
                self.round_error = Some(unresolved());
                SaleEvent::AttemptHalted
            }
        };
        self.attempt = None;
        self.call = None;
        self.engine.set_in_flight(&self.order_no, false);
        self.sale_step(ev).await;
    }

    async fn resolve(&mut self, req: ResolveRequest) -> Result<Payment, EngineError> {
        if self.sale != SalePhase::NeedsAttention {
            return Err(EngineError::OrderConflict(format!(
                "order {} has no attempt that needs attention",
                self.order_no
            )));
        }
        let j = self.engine.journal().clone();
        let r = req.clone();
        let done = blocking(move || match resolve::offline(&j, &r) {
            Ok(x) => Ok(Ok(x)),
            Err(ResolveError::Refused(why)) => Ok(Err(why)),
            Err(ResolveError::Journal(e)) => Err(e),
        })
        .await
        .map_err(|e| self.engine.journal_error(e))?;
        let (row, next) = done.map_err(EngineError::InvalidParams)?;
        let event = if next.phase == super::machine::Phase::Paid {
            "paid"
        } else {
            "failed"
        };
        self.engine.emit_payment(
            &self.order_no,
            event,
            json!({"out_trade_no": row.out_trade_no, "resolved_by": req.operator}),
        );
        self.sale_step(SaleEvent::AttemptEnded(next.phase)).await;
        self.payment().await
    }

    /// The Payment as the journal has it, with what the owner is doing now.
    fn payment(
        &self,
    ) -> impl std::future::Future<Output = Result<Payment, EngineError>> + Send + 'static {
        let j = self.engine.journal().clone();
        let o = self.order_no.clone();
        let live = match self.sale {
            SalePhase::WaitingScan => view::Live::Armed,
            SalePhase::Attempting => view::Live::Running,
            _ => view::Live::Idle,
        };
        async move {
            let order_no = o.clone();
            let found = blocking(move || {
                let sale = j.sale(&o)?;
                let refunds = j.refunds_of(&o)?;
                Ok(sale.map(|s| (s, refunds)))
            })
            .await
            .map_err(|e| EngineError::JournalUnavailable(e.to_string()))?;
            let ((sale, attempts), refunds) = found.ok_or(EngineError::UnknownOrder(order_no))?;
            Ok(Payment::build(&sale, &attempts, &refunds, live))
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
