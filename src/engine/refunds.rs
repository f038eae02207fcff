//! Refunds (payment-rules.md §17), as the order's owner drives them: separate from
//! revokes, keyed by the refund number, journaled before they are sent,
//! answered to the POS on the gateway's first answer, and confirmed by
//! refund query in the background (and across restarts) until the gateway
//! says refunded or failed. The refund machine decides; this runs it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::order::{self, Answer, Reply};
use super::{blocking, Engine, EngineError, RefundView};
use crate::domain::{out_refund_no, Fen};
use crate::gateway::{Gateway, GatewayNote, RefundRequest};
use crate::journal::{now_ms, RefundRow, RefundStatus};
use crate::machine::refund::{self, Refund, RefundAction, RefundCall, RefundEvent, RefundTiming};
use crate::machine::Phase;

/// A refund as the POS asks for it.
pub(super) struct Asked {
    pub refund_no: String,
    pub amount: u64,
    pub reason: Option<String>,
    pub operator_id: Option<String>,
}

pub(super) enum Opened {
    /// Answered from the journal (the same refund asked again).
    Answer(RefundView),
    /// A refund to run; the owner attaches the POS's reply.
    Run(Box<RefundRun>),
}

pub(super) struct RefundRun {
    row: RefundRow,
    /// What the paid attempt took: the refund's `total_amount`.
    total: Fen,
    transaction_id: Option<String>,
    gateway: Arc<dyn Gateway>,
    state: Refund,
    timing: RefundTiming,
    job: Option<(RefundCall, Instant)>,
    /// The POS that asked, answered on the gateway's first answer.
    pub reply: Option<Reply<RefundView>>,
}

fn rejected_by_gateway(note: Option<&GatewayNote>) -> EngineError {
    EngineError::RefundRejected(match note {
        Some(n) => format!("the gateway refused the refund: {} {}", n.code, n.message),
        None => "the gateway refused the refund".into(),
    })
}

/// Checks a refund request against the journal and journals a new one.
pub(super) async fn open(
    engine: &Arc<Engine>,
    order_no: &str,
    asked: Asked,
    attempt_idle: bool,
) -> Result<Opened, EngineError> {
    let j = engine.journal().clone();
    let (o, r) = (order_no.to_string(), asked.refund_no.clone());
    let (sale, existing) = blocking(move || Ok((j.sale(&o)?, j.refund(&r)?)))
        .await
        .map_err(|e| engine.journal_error(e))?;
    let (_, attempts) = sale.ok_or_else(|| EngineError::UnknownOrder(order_no.to_string()))?;
    if let Some(row) = existing {
        // The refund number is the idempotency key: the same request again
        // gets the refund as it stands; a different one is refused.
        if row.order_no != order_no || row.amount != Fen(asked.amount) {
            return Err(EngineError::RefundRejected(format!(
                "refund_no {} was used for another refund",
                asked.refund_no
            )));
        }
        if row.status == RefundStatus::Failed {
            return Err(rejected_by_gateway(row.error.as_ref()));
        }
        return Ok(Opened::Answer(RefundView::from(&row)));
    }
    let Some(paid) = attempts.iter().find(|a| a.state.phase == Phase::Paid) else {
        let why = if attempts.iter().any(|a| a.state.phase == Phase::Revoked) {
            "the payment was revoked: its money already went back"
        } else if !attempt_idle {
            "the order is still being paid"
        } else {
            "the order is not paid"
        };
        return Err(EngineError::RefundRejected(why.into()));
    };
    let gateway = engine
        .channel_gateway(&paid.channel)
        .ok_or(EngineError::ProviderUnavailable(paid.provider))?;
    let row = RefundRow {
        out_refund_no: out_refund_no(engine.journal().till_id(), &asked.refund_no),
        refund_no: asked.refund_no,
        order_no: order_no.to_string(),
        out_trade_no: paid.out_trade_no.clone(),
        amount: Fen(asked.amount),
        reason: asked.reason,
        status: RefundStatus::Pending,
        accepted: false,
        refund_id: None,
        error: None,
        created_at: now_ms(),
        operator_id: asked.operator_id,
    };
    let j = engine.journal().clone();
    let (r, total) = (row.clone(), paid.amount);
    blocking(move || j.begin_refund(&r, total))
        .await
        .map_err(|e| match e {
            crate::journal::JournalError::Refused(m) => EngineError::RefundRejected(m),
            other => engine.journal_error(other),
        })?;
    let mut run = RefundRun::new(
        engine,
        row,
        paid.amount,
        paid.transaction_id.clone(),
        gateway,
    );
    // `Requested` only schedules the send: it journals nothing that could fail.
    let _ = run.step_now(engine, RefundEvent::Requested).await;
    Ok(Opened::Run(Box::new(run)))
}

/// A refund the journal holds unsettled at start-up.
pub(super) async fn resume(engine: &Arc<Engine>, row: RefundRow) -> Option<RefundRun> {
    let j = engine.journal().clone();
    let o = row.order_no.clone();
    let sale = match blocking(move || j.sale(&o)).await {
        Ok(s) => s,
        Err(e) => {
            engine.fail_stop(&e);
            return None;
        }
    };
    let paid =
        sale.and_then(|(_, a)| a.into_iter().find(|a| a.out_trade_no == row.out_trade_no))?;
    let Some(gateway) = engine.channel_gateway(&paid.channel) else {
        tracing::error!(order = %row.order_no, refund_no = %row.refund_no,
            channel = %paid.channel, "cannot confirm refund: its channel is not configured");
        return None;
    };
    tracing::info!(order = %row.order_no, refund_no = %row.refund_no,
        status = row.status.as_str(), "resuming refund");
    let mut run = RefundRun::new(engine, row, paid.amount, paid.transaction_id, gateway);
    if run.step_now(engine, RefundEvent::Resumed).await {
        return None;
    }
    Some(run)
}

impl RefundRun {
    fn new(
        engine: &Engine,
        row: RefundRow,
        total: Fen,
        transaction_id: Option<String>,
        gateway: Arc<dyn Gateway>,
    ) -> RefundRun {
        RefundRun {
            state: row.state(),
            row,
            total,
            transaction_id,
            gateway,
            timing: RefundTiming::standard(engine.config().poll_interval),
            job: None,
            reply: None,
        }
    }

    pub(super) fn refund_no(&self) -> &str {
        &self.row.refund_no
    }

    pub(super) fn due(&self) -> Option<Instant> {
        self.job.map(|(_, at)| at)
    }

    fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.row.created_at).max(0) as u64)
    }

    /// Steps the machine without a call (start, resume): true when the run
    /// is over already (its journal record failed).
    async fn step_now(&mut self, engine: &Arc<Engine>, ev: RefundEvent) -> bool {
        self.feed(engine, ev).await
    }

    pub(super) fn start_call(&mut self) -> order::Call {
        let call = self.job.take().map_or(RefundCall::Query, |(c, _)| c);
        let gw = self.gateway.clone();
        let refund_no = self.row.refund_no.clone();
        let otn = self.row.out_trade_no.clone();
        let orn = self.row.out_refund_no.clone();
        match call {
            RefundCall::Send => {
                let req = RefundRequest {
                    operator_id: self.row.operator_id.clone(),
                    out_trade_no: otn,
                    transaction_id: self.transaction_id.clone(),
                    refund_no: orn,
                    total_amount: self.total,
                    refund_amount: self.row.amount,
                    reason: self.row.reason.clone(),
                };
                Box::pin(async move {
                    let ans = gw.refund(&req).await;
                    Answer::Refund {
                        refund_no,
                        event: RefundEvent::Answered(ans),
                    }
                })
            }
            RefundCall::Query => Box::pin(async move {
                let ans = gw.refund_query(&otn, &orn).await;
                Answer::Refund {
                    refund_no,
                    event: RefundEvent::Queried(ans),
                }
            }),
        }
    }

    /// Steps the machine and carries out its actions. True when the run is
    /// over: settled, left to an operator, or halted by the journal.
    pub(super) async fn feed(&mut self, engine: &Arc<Engine>, ev: RefundEvent) -> bool {
        let (next, actions) = refund::step(self.state, ev, self.age(), &self.timing);
        for action in actions {
            match action {
                RefundAction::Record {
                    kind,
                    note,
                    refund_id,
                } => {
                    let j = engine.journal().clone();
                    let no = self.row.refund_no.clone();
                    let (n, id) = (note.clone(), refund_id.clone());
                    let r = blocking(move || {
                        j.record_refund(&no, &next, kind, n.as_ref(), id.as_deref())
                    })
                    .await;
                    if let Err(e) = r {
                        engine.fail_stop(&e);
                        if let Some(reply) = self.reply.take() {
                            // The request may have reached the gateway.
                            let _ = reply.send(Err(EngineError::PaymentUnresolved(format!(
                                "{e}: the refund may have reached the gateway and is NOT settled; \
                                 do not refund again under another number; tillpay resumes it \
                                 when it restarts"
                            ))));
                        }
                        return true;
                    }
                    self.state = next;
                    self.row.status = next.status;
                    self.row.accepted = next.accepted;
                    if refund_id.is_some() {
                        self.row.refund_id = refund_id;
                    }
                    if note.is_some() {
                        self.row.error = note;
                    }
                }
                RefundAction::Reply => {
                    if let Some(reply) = self.reply.take() {
                        let answer = if self.row.status == RefundStatus::Failed {
                            Err(rejected_by_gateway(self.row.error.as_ref()))
                        } else {
                            Ok(RefundView::from(&self.row))
                        };
                        let _ = reply.send(answer);
                    }
                }
                RefundAction::Notify => engine.emit_refund(&RefundView::from(&self.row)),
                RefundAction::Schedule { call, after } => {
                    self.job = Some((call, Instant::now() + after));
                }
            }
        }
        self.state = next;
        self.job.is_none()
    }
}
