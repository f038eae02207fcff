//! What the sale machine decides that is not any one requester's: the
//! scanner let go, a round ended before a scan, the waiting clients
//! answered, an attempt started, resumed or ended.

use serde_json::json;

use super::{unresolved, Owner};
use crate::domain::AuthCode;
use crate::engine::attempt::{AttemptRun, Fed};
use crate::engine::{blocking, view, EngineError, Payment};
use crate::journal::AttemptRow;
use crate::machine::sale::{self, SaleAction, SaleEvent, SalePhase};
use crate::machine::Phase;

impl Owner {
    /// The sale actions that do not involve the requester.
    pub(super) async fn carry_out(&mut self, action: SaleAction) {
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
                        json!({"reason": why.message, "code": why.code}),
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
    pub(super) async fn sale_step(&mut self, ev: SaleEvent) {
        let (next, actions) = sale::step(self.sale, ev);
        self.sale = next;
        for a in actions {
            self.carry_out(a).await;
        }
    }

    pub(super) async fn answer_waiters(&mut self) {
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

    /// Journals a new attempt (before any byte leaves, payment-rules.md §3) and sends
    /// its pay request.
    pub(super) async fn start_attempt(&mut self, code: AuthCode) {
        // A charge armed before another attempt hit a journal failure: the
        // till is fail-stopped (payment-rules.md §14), so this code is not sent either.
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

    pub(super) async fn resume_attempt(&mut self, row: AttemptRow) {
        let (run, ev) = AttemptRun::resume(&self.engine, row);
        self.engine.set_in_flight(&self.order_no, true);
        self.attempt = Some(run);
        self.sale_step(SaleEvent::Resumed).await;
        if let Some(run) = self.attempt.as_mut() {
            let fed = run.feed(&self.engine, ev).await;
            self.after_attempt_step(fed).await;
        }
    }

    /// What the attempt's last step means for the sale.
    pub(super) async fn after_attempt_step(&mut self, fed: Fed) {
        let ev = match fed {
            Fed::Running => return,
            // The run stays to revoke; the sale (and its waiters) ended.
            Fed::Background => {
                self.engine.set_in_flight(&self.order_no, false);
                if self.sale != SalePhase::NeedsAttention {
                    self.sale_step(SaleEvent::AttemptEnded(Phase::NeedsAttention))
                        .await;
                }
                return;
            }
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

    /// The Payment as the journal has it, with what the owner is doing now.
    pub(super) fn payment(
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
