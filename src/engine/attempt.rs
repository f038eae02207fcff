//! One attempt in flight, as its order's owner drives it: the attempt
//! machine's state, the facts and clocks it reads, and its next gateway
//! call. `feed` steps the machine and carries out its actions in order:
//! journal records first; if one fails nothing further is sent (payment-rules.md §3,
//! 14) and the attempt is left for recovery.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::order::{self, Answer};
use super::{blocking, Engine, EngineError};
use crate::domain::AuthCode;
use crate::gateway::{Gateway, PayRequest};
use crate::journal::{now_ms, AttemptRow};
use crate::machine::{self, Action, Attempt, Call, Clock, Event, Facts, Phase, Timing};

/// What a step left the attempt in.
pub(super) enum Fed {
    Running,
    Ended(Phase),
    /// Ended `needs_attention` for the sale, but still revoking in the
    /// background (payment-rules.md §12): the run stays with its owner.
    Background,
    /// A journal write failed: the attempt stays as last journaled.
    Halted,
}

pub(super) struct AttemptRun {
    out_trade_no: String,
    order_no: String,
    /// `None` when the provider is no longer configured (recovery only).
    gateway: Option<Arc<dyn Gateway>>,
    facts: Facts,
    timing: Timing,
    state: Attempt,
    /// When the pay call started: `pay_timeout` counts from here.
    pay_started: Instant,
    /// When the pay request had surely reached the gateway (see
    /// [`Clock::since_sent`]).
    sent: Option<Instant>,
    /// The next call and when it is due.
    job: Option<(Call, Instant)>,
}

fn timing(engine: &Engine, gw: Option<&Arc<dyn Gateway>>) -> Timing {
    let cfg = engine.config();
    Timing {
        poll_interval: cfg.poll_interval,
        pay_timeout: cfg.pay_timeout,
        revoke_interval: cfg.revoke_interval,
        revoke_max_attempts: cfg.revoke_max_attempts,
        min_revoke_delay: gw.map_or(Duration::ZERO, |g| g.min_revoke_delay()),
    }
}

impl AttemptRun {
    /// Journals a new attempt for `code` and returns it with its pay call,
    /// which the owner puts on the wire.
    pub(super) async fn begin(
        engine: &Arc<Engine>,
        order_no: &str,
        code: AuthCode,
    ) -> Result<(AttemptRun, order::Call), EngineError> {
        let gateway = engine
            .gateways
            .get(&code.provider())
            .cloned()
            .ok_or(EngineError::ProviderUnavailable(code.provider()))?;
        let channel = gateway.channel();
        let j = engine.journal().clone();
        let o = order_no.to_string();
        let c = code.clone();
        let (row, sale) = blocking(move || {
            let row = j.begin_attempt_on(&o, &c, channel)?;
            let sale = j.sale(&o)?.map(|(s, _)| s);
            Ok((row, sale))
        })
        .await
        .map_err(|e| engine.journal_error(e))?;
        engine.emit_payment(
            order_no,
            "submitted",
            json!({
                "provider": row.provider,
                "channel": row.channel,
                "out_trade_no": row.out_trade_no,
                "auth_code_masked": row.code_masked,
            }),
        );
        let req = PayRequest {
            out_trade_no: row.out_trade_no.clone(),
            order_no: row.order_no.clone(),
            seq: row.seq,
            amount: row.amount,
            auth_code: code,
            subject: sale.as_ref().map(|s| s.subject.clone()).unwrap_or_default(),
            operator_id: sale.and_then(|s| s.operator_id),
        };
        let gw = gateway.clone();
        // The full code lives in this future only, until its one use.
        let call: order::Call = Box::pin(async move {
            let answer = gw.pay(&req).await;
            Answer::Attempt(Event::PayAnswered(answer))
        });
        let run = AttemptRun {
            out_trade_no: row.out_trade_no.clone(),
            order_no: row.order_no.clone(),
            timing: timing(engine, Some(&gateway)),
            gateway: Some(gateway),
            facts: Facts {
                amount: row.amount,
                submitted_at_ms: row.submitted_at,
            },
            state: row.state,
            pay_started: Instant::now(),
            sent: None,
            job: None,
        };
        Ok((run, call))
    }

    /// An attempt the journal holds in flight at start-up, with the event
    /// that resumes it.
    pub(super) fn resume(engine: &Arc<Engine>, row: AttemptRow) -> (AttemptRun, Event) {
        let gateway = engine.channel_gateway(&row.channel);
        // Wall clock across the restart; a clock that went backwards counts
        // as no time passed (the machine asks the gateway first anyway).
        let elapsed =
            Duration::from_millis(now_ms().saturating_sub(row.submitted_at).max(0) as u64);
        // The pay request left no later than its HTTP timeout after the
        // attempt was journaled.
        let since_sent = elapsed.saturating_sub(engine.config().http_timeout);
        let now = Instant::now();
        tracing::info!(order = %row.order_no, out_trade_no = %row.out_trade_no,
            phase = row.state.phase.as_str(), elapsed_ms = elapsed.as_millis() as u64, "resuming attempt");
        let ev = match &gateway {
            Some(_) => Event::Resumed,
            None => {
                tracing::error!(order = %row.order_no, out_trade_no = %row.out_trade_no,
                    provider = %row.provider, "cannot resume: provider not configured");
                Event::ProviderMissing
            }
        };
        let run = AttemptRun {
            out_trade_no: row.out_trade_no.clone(),
            order_no: row.order_no.clone(),
            timing: timing(engine, gateway.as_ref()),
            gateway,
            facts: Facts {
                amount: row.amount,
                submitted_at_ms: row.submitted_at,
            },
            state: row.state,
            pay_started: now.checked_sub(elapsed).unwrap_or(now),
            sent: Some(now.checked_sub(since_sent).unwrap_or(now)),
            job: None,
        };
        (run, ev)
    }

    pub(super) fn due(&self) -> Option<Instant> {
        self.job.map(|(_, at)| at)
    }

    fn clock(&self) -> Clock {
        Clock {
            since_pay: self.pay_started.elapsed(),
            since_sent: self.sent.map_or(Duration::ZERO, |s| s.elapsed()),
        }
    }

    /// Takes the due call off the schedule and returns it for the wire.
    pub(super) fn start_call(&mut self) -> order::Call {
        let call = self.job.take().map_or(Call::Query, |(c, _)| c);
        let otn = self.out_trade_no.clone();
        let Some(gw) = self.gateway.clone() else {
            // Unreachable (a missing provider goes to an operator at
            // resume), but never a call that waits for ever.
            return Box::pin(async { Answer::Attempt(Event::ProviderMissing) });
        };
        match call {
            Call::Query => {
                Box::pin(async move { Answer::Attempt(Event::QueryAnswered(gw.query(&otn).await)) })
            }
            Call::Revoke => {
                Box::pin(
                    async move { Answer::Attempt(Event::RevokeAnswered(gw.revoke(&otn).await)) },
                )
            }
        }
    }

    /// A gateway answer: the pay request's return starts the "sent" clock.
    pub(super) async fn answered(&mut self, engine: &Arc<Engine>, ev: Event) -> Fed {
        if matches!(ev, Event::PayAnswered(_)) {
            self.sent = Some(Instant::now());
        }
        let fed = self.feed(engine, ev).await;
        if matches!(fed, Fed::Running) && self.job.is_none() {
            // The machine gives every in-flight state a next call; if a stray
            // answer ever left none, ask the gateway again rather than
            // abandon the attempt.
            tracing::error!(order = %self.order_no, phase = self.state.phase.as_str(), "no next call: querying again");
            self.job = Some((Call::Query, Instant::now() + self.timing.poll_interval));
        }
        fed
    }

    /// Steps the machine and carries out its actions.
    pub(super) async fn feed(&mut self, engine: &Arc<Engine>, ev: Event) -> Fed {
        let (next, actions) =
            machine::step(self.state, ev, self.clock(), &self.timing, &self.facts);
        for action in actions {
            match action {
                Action::Record(rec) => {
                    if rec.config_error {
                        tracing::error!(order = %self.order_no, note = ?rec.note, "gateway refused the request: check the merchant configuration");
                    }
                    let j = engine.journal().clone();
                    let otn = self.out_trade_no.clone();
                    if let Err(e) = blocking(move || j.record(&otn, &next, &rec)).await {
                        engine.fail_stop(&e);
                        return Fed::Halted;
                    }
                    self.state = next;
                }
                Action::Notify(n) => {
                    let extra = json!({
                        "out_trade_no": self.out_trade_no,
                        "elapsed_ms": self.clock().since_pay.as_millis() as u64,
                    });
                    engine.emit_payment(&self.order_no, n.as_str(), extra);
                }
                Action::Schedule { call, after } => {
                    self.job = Some((call, Instant::now() + after));
                }
            }
        }
        self.state = next;
        if !self.state.phase.is_final() {
            Fed::Running
        } else if self.state.background_revoke && self.job.is_some() {
            Fed::Background
        } else {
            Fed::Ended(self.state.phase)
        }
    }
}
