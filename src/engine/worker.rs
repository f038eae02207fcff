//! The thin I/O loop around the state machine for one attempt: call the
//! gateway, feed the answer to `machine::step`, carry out its actions in
//! order. Journal records go first; if one fails nothing further is sent
//! (POLICY 3, 14) and the attempt is left for recovery.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::machine::{self, Action, Attempt, Call, Event, Timing};
use super::{blocking, Engine};
use crate::domain::Fen;
use crate::gateway::{Gateway, GatewayNote, PaidInfo, PayAnswer, PayRequest, QueryAnswer};
use crate::journal::AttemptRow;

pub(crate) enum First {
    /// A new attempt: send the pay request.
    Pay(PayRequest),
    /// After a restart: resume from the journaled state, `elapsed` after
    /// the pay request by the wall clock.
    Resume { elapsed: Duration },
}

struct Halted;

struct Run<'a> {
    engine: &'a Arc<Engine>,
    out_trade_no: String,
    order_no: String,
    code_masked: String,
    /// The sale's amount: a paid answer for another one is not this sale's.
    amount: Fen,
    /// Wall-clock ms when the attempt was journaled, just before its pay
    /// request: a payment booked well before it is not this attempt's.
    submitted_at: i64,
    /// The pay request was answered "this order number is already paid /
    /// used" (WeChat ORDERPAID, OUT_TRADE_NO_USED; Alipay
    /// ACQ.TRADE_HAS_SUCCESS). tillpay sends a pay request only once, so
    /// that names an earlier trade: the query decides (POLICY 5), but a
    /// payment it shows from before this attempt is not this sale's.
    used_number: bool,
    timing: Timing,
    attempt: Attempt,
    /// When the pay request was sent, on the monotonic clock.
    base: Instant,
    cancel_rx: mpsc::UnboundedReceiver<()>,
    cancel_open: bool,
}

pub(crate) async fn run(
    engine: &Arc<Engine>,
    row: AttemptRow,
    gateway: Arc<dyn Gateway>,
    first: First,
    cancel_rx: mpsc::UnboundedReceiver<()>,
) {
    let cfg = engine.config();
    let timing = Timing {
        poll_interval: cfg.poll_interval,
        pay_timeout: cfg.pay_timeout,
        revoke_interval: cfg.revoke_interval,
        revoke_max_attempts: cfg.revoke_max_attempts,
        min_revoke_delay: gateway.min_revoke_delay(),
    };
    let now = Instant::now();
    let base = match &first {
        First::Pay(_) => now,
        First::Resume { elapsed } => now.checked_sub(*elapsed).unwrap_or(now),
    };
    let mut run = Run {
        engine,
        out_trade_no: row.out_trade_no.clone(),
        order_no: row.order_no.clone(),
        code_masked: row.code_masked.clone(),
        amount: row.amount,
        submitted_at: row.submitted_at,
        used_number: false,
        timing,
        attempt: row.state,
        base,
        cancel_rx,
        cancel_open: true,
    };
    let _ = run.drive(gateway.as_ref(), first).await;
}

impl Run<'_> {
    fn elapsed(&self) -> Duration {
        self.base.elapsed()
    }

    async fn drive(&mut self, gw: &dyn Gateway, first: First) -> Result<(), Halted> {
        let mut next = match first {
            First::Pay(req) => {
                self.engine.emit_payment(
                    &self.order_no,
                    "submitted",
                    json!({
                        "provider": gw.provider(),
                        "out_trade_no": self.out_trade_no,
                        "auth_code_masked": self.code_masked,
                    }),
                );
                let answer = self.in_flight(gw.pay(&req)).await?;
                drop(req); // the full auth code is not kept past its one use
                if let PayAnswer::Unknown { note, .. } = &answer {
                    self.used_number = note.says_order_number_used();
                }
                let event = self.checked(Event::PayAnswered(answer));
                self.feed(event).await?
            }
            First::Resume { .. } => {
                tracing::info!(order = %self.order_no, out_trade_no = %self.out_trade_no, "resuming attempt");
                self.feed(Event::Resumed).await?
            }
        };
        // Each turn makes one gateway call; the machine bounds the count.
        let out_trade_no = self.out_trade_no.clone();
        while let Some((call, after)) = next {
            let Some((call, after)) = self.sleep_until_due(call, after).await? else {
                continue;
            };
            debug_assert!(after.is_zero());
            let event = match call {
                Call::Query => {
                    let answer = self.in_flight(gw.query(&out_trade_no)).await?;
                    self.checked(Event::QueryAnswered(answer))
                }
                Call::Revoke => {
                    Event::RevokeAnswered(self.in_flight(gw.revoke(&out_trade_no)).await?)
                }
            };
            next = self.feed(event).await?;
            if next.is_none() && !self.attempt.phase.is_final() {
                // The machine gives every in-flight state a next call; if a
                // stray event ever left none, ask the gateway again rather
                // than abandon the attempt.
                tracing::error!(order = %self.order_no, phase = self.attempt.phase.as_str(), "no next call: querying again");
                next = Some((Call::Query, self.timing.poll_interval));
            }
        }
        Ok(())
    }

    /// Waits `after`, handling cashier cancels meanwhile (which may
    /// reschedule). Returns the call that is due now.
    async fn sleep_until_due(
        &mut self,
        mut call: Call,
        after: Duration,
    ) -> Result<Option<(Call, Duration)>, Halted> {
        let mut due = Instant::now() + after;
        loop {
            if !self.cancel_open {
                tokio::time::sleep_until(due).await;
                return Ok(Some((call, Duration::ZERO)));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due) => return Ok(Some((call, Duration::ZERO))),
                msg = self.cancel_rx.recv() => {
                    if msg.is_none() {
                        self.cancel_open = false;
                        continue;
                    }
                    if let Some((c, a)) = self.feed(Event::CancelRequested).await? {
                        call = c;
                        due = Instant::now() + a;
                    }
                }
            }
        }
    }

    /// Awaits a gateway call without interrupting it; a cancel meanwhile
    /// is journaled at once and the answer, when it comes, sees it.
    async fn in_flight<T>(&mut self, call: impl Future<Output = T>) -> Result<T, Halted> {
        tokio::pin!(call);
        loop {
            if !self.cancel_open {
                return Ok(call.await);
            }
            tokio::select! {
                r = &mut call => return Ok(r),
                msg = self.cancel_rx.recv() => match msg {
                    None => self.cancel_open = false,
                    Some(()) => {
                        // Any schedule it proposes is superseded by the answer's step.
                        let _ = self.feed(Event::CancelRequested).await?;
                    }
                },
            }
        }
    }

    /// A paid answer that is not this sale's payment becomes
    /// [`Event::NotThisSale`]; every other event passes unchanged.
    fn checked(&self, ev: Event) -> Event {
        let info = match &ev {
            Event::PayAnswered(PayAnswer::Paid(info))
            | Event::QueryAnswered(QueryAnswer::Paid(info)) => info,
            _ => return ev,
        };
        let Some(why) = self.not_ours(info) else {
            return ev;
        };
        tracing::error!(
            order = %self.order_no,
            out_trade_no = %self.out_trade_no,
            code = %why.code,
            "{}",
            why.message
        );
        Event::NotThisSale {
            info: info.clone(),
            why,
        }
    }

    /// Why a paid answer is not this attempt's payment, if it is not.
    fn not_ours(&self, info: &PaidInfo) -> Option<GatewayNote> {
        if info.amount.is_some_and(|a| a != self.amount) {
            return Some(machine::amount_mismatch(info, self.amount));
        }
        // Five minutes of slack for the till's clock against the gateway's.
        let paid_ms = info
            .paid_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis());
        let long_before = paid_ms.is_some_and(|p| p < self.submitted_at - 5 * 60 * 1000);
        (self.used_number && long_before).then(|| machine::order_number_collision(info))
    }

    /// Steps the machine and carries out its actions. Returns the next call.
    async fn feed(&mut self, ev: Event) -> Result<Option<(Call, Duration)>, Halted> {
        let (next, actions) = machine::step(self.attempt, ev, self.elapsed(), &self.timing);
        let mut schedule = None;
        for action in actions {
            match action {
                Action::Record(rec) => {
                    if rec.config_error {
                        tracing::error!(order = %self.order_no, note = ?rec.note, "gateway refused the request: check the merchant configuration");
                    }
                    let j = self.engine.journal().clone();
                    let otn = self.out_trade_no.clone();
                    if let Err(e) = blocking(move || j.record(&otn, &next, &rec)).await {
                        self.engine.fail_stop(&e);
                        return Err(Halted);
                    }
                    self.attempt = next;
                }
                Action::Notify(n) => {
                    let extra = json!({
                        "out_trade_no": self.out_trade_no,
                        "elapsed_ms": self.elapsed().as_millis() as u64,
                    });
                    self.engine.emit_payment(&self.order_no, n.as_str(), extra);
                }
                Action::Schedule { call, after } => schedule = Some((call, after)),
            }
        }
        self.attempt = next;
        Ok(schedule)
    }
}
