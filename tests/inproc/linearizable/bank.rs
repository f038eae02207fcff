//! A scripted bank behind both gateways: it keeps the money. Every payment
//! code carries a behaviour (pays at once, the customer confirms after a
//! while or never, declined, the answer lost, a slow answer); trades,
//! revokes and refunds move money as the gateways' documents say, and every
//! pay request is stamped in the shared history, so the checks can tell
//! which answers came before which payments.
//!
//! Over 400 lines: the scripted bank answers every gateway call, each with its faults, in one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tillpay::domain::{Fen, Provider};
use tillpay::gateway::{
    BillAnswer, Gateway, GatewayNote, PaidInfo, PayAnswer, PayRequest, QueryAnswer, RefundAnswer,
    RefundRequest, RevokeAnswer, RevokeEffect,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    PaysAtOnce,
    /// The customer confirms on the phone after this long.
    Confirms(Duration),
    NeverConfirms,
    Declined,
    /// Paid, but the answer never reaches the till.
    AnswerLost,
    /// Paid at once; the answer takes this long.
    Slow(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeState {
    /// The customer is on the password screen; paid at `confirm_at`.
    Paying {
        confirm_at: Option<Duration>,
    },
    Paid,
    Failed,
    /// Closed unpaid, or revoked (refunded in full when `refunded`).
    Closed {
        refunded: bool,
    },
}

#[derive(Debug, Clone)]
pub struct BankRefund {
    pub amount: u64,
    pub settle_at: Duration,
}

#[derive(Debug, Clone)]
pub struct Trade {
    pub amount: u64,
    pub state: TradeState,
    /// When its pay request arrived (WeChat's 15 s count from here).
    pub sent_at: Duration,
    /// The history stamp of its pay request.
    pub pay_seq: u64,
    pub refunds: HashMap<String, BankRefund>,
    pub revoke_refusals_left: u32,
}

#[derive(Default)]
struct State {
    /// Time of earlier runtimes (a killed daemon's), so bank time goes on
    /// across a restart.
    offset: Duration,
    started: Option<tokio::time::Instant>,
    codes: HashMap<String, (Behaviour, u32)>,
    used_codes: HashMap<String, String>,
    trades: HashMap<String, Trade>,
    refund_delays: HashMap<String, Duration>,
    violations: Vec<String>,
}

/// The history every event is stamped in: pay requests here, answers to
/// clients in the test.
#[derive(Default)]
pub struct History {
    pub next: u64,
}

pub struct Bank {
    state: Mutex<State>,
    pub history: Arc<Mutex<History>>,
}

impl Bank {
    pub fn new(history: Arc<Mutex<History>>) -> Arc<Bank> {
        Arc::new(Bank {
            state: Mutex::new(State::default()),
            history,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stamp(&self) -> u64 {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.next += 1;
        h.next
    }

    /// A new runtime (a daemon started) begins at bank time `offset`.
    pub fn start_runtime(&self, offset: Duration) {
        let mut s = self.lock();
        s.offset = offset;
        s.started = Some(tokio::time::Instant::now());
    }

    /// The runtime ends (its clock stops with it): bank time stands still.
    pub fn stop_runtime(&self) {
        let now = self.now();
        let mut s = self.lock();
        s.offset = now;
        s.started = None;
    }

    pub fn now(&self) -> Duration {
        let s = self.lock();
        s.offset + s.started.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Gives `code` a behaviour, and `revoke_refusals` SYSTEMERROR answers
    /// before its revoke goes through.
    pub fn code(&self, code: &str, b: Behaviour, revoke_refusals: u32) {
        self.lock()
            .codes
            .insert(code.to_string(), (b, revoke_refusals));
    }

    /// How long a refund of this number takes to land.
    pub fn refund_delay(&self, refund_no: &str, d: Duration) {
        self.lock().refund_delays.insert(refund_no.to_string(), d);
    }

    pub fn trades(&self) -> HashMap<String, Trade> {
        let now = self.now();
        let mut s = self.lock();
        for t in s.trades.values_mut() {
            settle(t, now);
        }
        s.trades.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }
}

fn settle(t: &mut Trade, now: Duration) {
    if let TradeState::Paying {
        confirm_at: Some(at),
    } = t.state
    {
        if at <= now {
            t.state = TradeState::Paid;
        }
    }
}

/// Money the trade holds now: paid, minus refunds that landed.
pub fn kept(t: &Trade, now: Duration) -> u64 {
    match t.state {
        TradeState::Paid => {
            let back: u64 = t
                .refunds
                .values()
                .filter(|r| r.settle_at <= now)
                .map(|r| r.amount)
                .sum();
            t.amount.saturating_sub(back)
        }
        _ => 0,
    }
}

fn note(code: &str) -> GatewayNote {
    GatewayNote::new(code, format!("{code} (bank)"))
}

fn info(otn: &str, amount: u64) -> PaidInfo {
    PaidInfo {
        paid_by: Default::default(),
        transaction_id: format!("TX{otn}"),
        paid_at: Some(chrono::Local::now().to_rfc3339()),
        amount: Some(Fen(amount)),
    }
}

/// One provider's gateway in front of the bank.
pub struct Counter {
    pub provider: Provider,
    pub bank: Arc<Bank>,
}

#[async_trait]
impl Gateway for Counter {
    fn channel(&self) -> &'static str {
        (self.provider).as_str()
    }

    fn carries(&self) -> &'static [Provider] {
        (self.provider).alone()
    }

    fn min_revoke_delay(&self) -> Duration {
        match self.provider {
            Provider::Wechat => Duration::from_secs(15),
            _ => Duration::ZERO,
        }
    }

    // Every scripted pay outcome in one match.
    async fn pay(&self, req: &PayRequest) -> PayAnswer {
        let seq = self.bank.stamp();
        let now = self.bank.now();
        let code = req.auth_code.expose().to_string();
        let otn = req.out_trade_no.clone();
        let (answer, delay) = {
            let mut s = self.bank.lock();
            if s.trades.contains_key(&otn) {
                s.violations.push(format!("{otn}: a second pay request"));
                return PayAnswer::Unknown {
                    note: note("ORDERPAID"),
                    user_paying: false,
                };
            }
            if let Some(first) = s.used_codes.get(&code).cloned() {
                s.violations
                    .push(format!("{otn}: code already sent by {first}"));
                return PayAnswer::Failed {
                    note: note("AUTH_CODE_INVALID"),
                    config_error: false,
                };
            }
            s.used_codes.insert(code.clone(), otn.clone());
            let (b, refusals) = s
                .codes
                .get(&code)
                .copied()
                .unwrap_or((Behaviour::PaysAtOnce, 0));
            let (state, answer, delay) = match b {
                Behaviour::PaysAtOnce => (
                    TradeState::Paid,
                    PayAnswer::Paid(info(&otn, req.amount.0)),
                    Duration::ZERO,
                ),
                Behaviour::Slow(d) => (
                    TradeState::Paid,
                    PayAnswer::Paid(info(&otn, req.amount.0)),
                    d,
                ),
                Behaviour::AnswerLost => (
                    TradeState::Paid,
                    PayAnswer::Unknown {
                        note: note("TIMEOUT"),
                        user_paying: false,
                    },
                    Duration::from_secs(10),
                ),
                Behaviour::Confirms(after) => (
                    TradeState::Paying {
                        confirm_at: Some(now + after),
                    },
                    PayAnswer::Unknown {
                        note: note("USERPAYING"),
                        user_paying: true,
                    },
                    Duration::ZERO,
                ),
                Behaviour::NeverConfirms => (
                    TradeState::Paying { confirm_at: None },
                    PayAnswer::Unknown {
                        note: note("USERPAYING"),
                        user_paying: true,
                    },
                    Duration::ZERO,
                ),
                Behaviour::Declined => (
                    TradeState::Failed,
                    PayAnswer::Failed {
                        note: note("NOTENOUGH"),
                        config_error: false,
                    },
                    Duration::ZERO,
                ),
            };
            s.trades.insert(
                otn.clone(),
                Trade {
                    amount: req.amount.0,
                    state,
                    sent_at: now,
                    pay_seq: seq,
                    refunds: HashMap::new(),
                    revoke_refusals_left: refusals,
                },
            );
            (answer, delay)
        };
        tokio::time::sleep(delay).await;
        answer
    }

    async fn query(&self, otn: &str) -> QueryAnswer {
        let now = self.bank.now();
        let mut s = self.bank.lock();
        let Some(t) = s.trades.get_mut(otn) else {
            return QueryAnswer::Pending {
                note: note("ORDERNOTEXIST"),
                user_paying: false,
            };
        };
        settle(t, now);
        match t.state {
            TradeState::Paid => QueryAnswer::Paid(info(otn, t.amount)),
            TradeState::Paying { .. } => QueryAnswer::Pending {
                note: note("USERPAYING"),
                user_paying: true,
            },
            TradeState::Failed | TradeState::Closed { .. } => QueryAnswer::NotPaid(note("CLOSED")),
        }
    }

    async fn revoke(&self, otn: &str) -> RevokeAnswer {
        let now = self.bank.now();
        let min = self.min_revoke_delay();
        let mut s = self.bank.lock();
        let Some(t) = s.trades.get_mut(otn) else {
            return RevokeAnswer::Revoked(RevokeEffect::Closed);
        };
        settle(t, now);
        if now < t.sent_at + min {
            let v = format!(
                "{otn}: reversed {:?} after the pay request",
                now - t.sent_at
            );
            s.violations.push(v);
            return RevokeAnswer::Retry(note("TOO_EARLY"));
        }
        if t.revoke_refusals_left > 0 {
            t.revoke_refusals_left -= 1;
            return RevokeAnswer::Retry(note("SYSTEMERROR"));
        }
        let effect = match t.state {
            TradeState::Paid => {
                if !t.refunds.is_empty() {
                    // A refunded trade cannot be revoked (both gateways).
                    return RevokeAnswer::Refused(note("REFUND_EXISTS"));
                }
                t.state = TradeState::Closed { refunded: true };
                RevokeEffect::Refunded
            }
            TradeState::Closed { refunded: true } => RevokeEffect::Refunded,
            _ => {
                t.state = TradeState::Closed { refunded: false };
                RevokeEffect::Closed
            }
        };
        match self.provider {
            // WeChat's reverse does not say whether money moved.
            Provider::Wechat => RevokeAnswer::Revoked(RevokeEffect::Unstated),
            _ => RevokeAnswer::Revoked(effect),
        }
    }

    async fn refund(&self, req: &RefundRequest) -> RefundAnswer {
        let now = self.bank.now();
        let mut s = self.bank.lock();
        let delay = s
            .refund_delays
            .get(&req.refund_no)
            .copied()
            .unwrap_or(Duration::ZERO);
        let Some(t) = s.trades.get_mut(&req.out_trade_no) else {
            return RefundAnswer::Failed(note("ORDERNOTEXIST"));
        };
        settle(t, now);
        if t.state != TradeState::Paid {
            return RefundAnswer::Failed(note("TRADE_STATUS_ERROR"));
        }
        if let Some(r) = t.refunds.get(&req.refund_no) {
            if r.amount != req.refund_amount.0 {
                return RefundAnswer::Failed(note("REFUND_FEE_MISMATCH"));
            }
        } else {
            let taken: u64 = t.refunds.values().map(|r| r.amount).sum();
            if taken + req.refund_amount.0 > t.amount {
                return RefundAnswer::Failed(note("NOTENOUGH"));
            }
            t.refunds.insert(
                req.refund_no.clone(),
                BankRefund {
                    amount: req.refund_amount.0,
                    settle_at: now + delay,
                },
            );
        }
        match t.refunds.get(&req.refund_no) {
            Some(r) if r.settle_at <= now => RefundAnswer::Refunded { refund_id: None },
            _ => RefundAnswer::Processing(note("ACCEPTED")),
        }
    }

    async fn refund_query(&self, otn: &str, refund_no: &str) -> RefundAnswer {
        let now = self.bank.now();
        let s = self.bank.lock();
        match s.trades.get(otn).and_then(|t| t.refunds.get(refund_no)) {
            Some(r) if r.settle_at <= now => RefundAnswer::Refunded { refund_id: None },
            Some(_) => RefundAnswer::Processing(note("PROCESSING")),
            None => RefundAnswer::NotFound(note("REFUNDNOTEXIST")),
        }
    }

    async fn bill(&self, _: &str) -> BillAnswer {
        BillAnswer::NoBill(note("none"))
    }
}
