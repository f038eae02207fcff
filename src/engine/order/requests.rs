//! The POS's requests on one order, as its owner takes them: charge, scan,
//! cancel and an operator's verdict. Each steps the sale machine once and
//! carries out its actions; what is not the requester's goes to
//! [`super::round`].

use serde_json::json;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{unresolved, Owner, Reply};
use std::sync::Arc;

use crate::domain::{AuthCode, Fen};
use crate::engine::resolve::{self, ResolveError, ResolveRequest};
use crate::engine::{blocking, ChargeRequest, Engine, EngineError, Payment, ScanOutcome};
use crate::journal::JournalError;
use crate::machine::sale::{self, Refusal, SaleAction, SaleEvent, SalePhase};
use crate::machine::Event;

impl Owner {
    // Long because a charge answers every state of the sale; each arm is short and the order matters.
    pub(super) async fn charge(
        &mut self,
        req: ChargeRequest,
        code: Option<AuthCode>,
        reply: Reply<Payment>,
    ) {
        let facts = charge_facts(self.engine.clone(), self.order_no.clone(), code.clone()).await;
        let (sale_amount, used) = match facts {
            Ok(x) => x,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let claimed = code.is_none() && self.engine.claim_scanner(&self.order_no);
        let ev = SaleEvent::Charge {
            amount_matches: sale_amount.is_none_or(|a| a == req.amount),
            typed: code.is_some(),
            code_used: used.is_some(),
            scanner_free: claimed,
        };
        let (next, actions) = sale::step(self.sale, ev);
        if claimed && !actions.contains(&SaleAction::Arm) {
            self.engine.release_scanner(&self.order_no);
        }
        if actions.contains(&SaleAction::StartAttempt) {
            // Seen in flight (by `list`, `status`) from now, not only once
            // the attempt is journaled.
            self.engine.set_in_flight(&self.order_no, true);
        }
        let arm = actions.contains(&SaleAction::Arm);
        if arm || actions.contains(&SaleAction::StartAttempt) {
            // The sale row exists before anything else is journaled.
            let opened = open_round(self.engine.clone(), self.order_no.clone(), &req, arm).await;
            if let Err(e) = opened {
                if claimed {
                    self.engine.release_scanner(&self.order_no);
                }
                self.engine.set_in_flight(&self.order_no, false);
                let _ = reply.send(Err(e));
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

    pub(super) fn refusal(
        &self,
        why: Refusal,
        req: &ChargeRequest,
        used_by: Option<&str>,
    ) -> EngineError {
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

    pub(super) async fn scan(&mut self, code: AuthCode, reply: oneshot::Sender<ScanOutcome>) {
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

    pub(super) async fn cancel(&mut self, reply: Reply<Payment>) {
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

    pub(super) async fn resolve(&mut self, req: ResolveRequest) -> Result<Payment, EngineError> {
        if self.sale != SalePhase::NeedsAttention {
            return Err(EngineError::OrderConflict(format!(
                "order {} has no attempt that needs attention",
                self.order_no
            )));
        }
        // A background revoke on the wire may refund the payment the
        // operator is about to call paid: its answer comes first.
        if self.attempt.is_some() && self.call.is_some() {
            return Err(EngineError::OrderConflict(format!(
                "order {}: a background revoke is on the wire; its answer may settle the \
                 order; try again in a few seconds",
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
        // The verdict settles the attempt: its background revokes stop.
        self.attempt = None;
        let event = if next.phase == crate::machine::Phase::Paid {
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
}

/// What a charge is judged by: the sale's amount, if the sale exists, and
/// the order whose attempt sent the typed code before, if one did.
async fn charge_facts(
    engine: Arc<Engine>,
    order_no: String,
    code: Option<AuthCode>,
) -> Result<(Option<u64>, Option<String>), EngineError> {
    let j = engine.journal().clone();
    let facts = blocking(move || {
        let amount = j.sale(&order_no)?.map(|(s, _)| s.amount.0);
        let used = match &code {
            Some(c) => j.code_used(c)?,
            None => None,
        };
        Ok((amount, used))
    })
    .await;
    facts.map_err(|e| engine.journal_error(e))
}

/// Journals the sale (new, or re-opened after an unpaid round) and, for a
/// charge that waits for the scanner, that it waits.
async fn open_round(
    engine: Arc<Engine>,
    order_no: String,
    req: &ChargeRequest,
    arm: bool,
) -> Result<(), EngineError> {
    let j = engine.journal().clone();
    let amount = Fen(req.amount);
    let subject = req.subject.clone().unwrap_or_default();
    let operator = req.operator_id.clone();
    let opened = blocking(move || {
        j.ensure_sale(&order_no, amount, &subject, operator.as_deref())?;
        if arm {
            j.arm(&order_no)?;
        }
        Ok(())
    })
    .await;
    opened.map_err(|e| engine.journal_error(e))
}
