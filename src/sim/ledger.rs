//! The simulator's book of orders and money, shared by both dialects. It
//! models the customer (see [`Behaviour`]) and the acquirer's side of an
//! order; each dialect only translates it to and from its wire format.
//!
//! Time: a customer who "confirms after N" does so N `time_unit`s after the
//! pay request, measured on the monotonic clock when the order is looked at.
//!
//! Over 400 lines: the ledger is the simulator's one source of truth about money, kept together so its invariants can be read at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};

use crate::domain::{mask_code, Fen, Provider};
use crate::gateway::RevokeEffect;
use crate::sim::behaviour::Behaviour;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    /// Created; waiting for the customer (WeChat USERPAYING / NOTPAY,
    /// Alipay WAIT_BUYER_PAY).
    Open,
    Paid,
    /// The payment failed at the bank (WeChat PAYERROR, Alipay TRADE_CLOSED).
    Failed,
    /// Revoked: closed unpaid or refunded after payment.
    Revoked(RevokeEffect),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRefund {
    pub refund_no: String,
    pub refund_id: String,
    pub amount: Fen,
    pub at: DateTime<Local>,
    /// A refund that a revoke of a paid order caused.
    pub by_revoke: bool,
    /// When the money reaches the customer (WeChat: a refund is accepted
    /// first and lands later, "20 minutes to the balance, 3 working days to
    /// a card"); `None`: at once.
    pub lands_at: Option<Instant>,
    /// How the refund ends once processed (the order's behaviour decides).
    pub ends: RefundEnd,
    /// When it was made, on the monotonic clock.
    made: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundEnd {
    /// The money went back (WeChat SUCCESS).
    Returned,
    /// Closed without the money going back (WeChat REFUNDCLOSE).
    Closed,
    /// The money could not be returned to the customer's account and waits
    /// for the merchant (WeChat CHANGE).
    Change,
}

impl SimRefund {
    /// Processing is over (the refund query shows its end).
    pub fn landed(&self) -> bool {
        self.lands_at.is_none_or(|t| t <= Instant::now())
    }

    /// The money is back with the customer.
    pub fn returned(&self) -> bool {
        self.landed() && self.ends == RefundEnd::Returned
    }

    /// Still counts against what is left to refund: processing, or returned.
    fn holds(&self) -> bool {
        !self.landed() || self.ends == RefundEnd::Returned
    }
}

#[derive(Debug, Clone)]
pub struct Order {
    pub provider: Provider,
    pub out_trade_no: String,
    /// WeChat transaction_id / Alipay trade_no.
    pub transaction_id: String,
    pub amount: Fen,
    /// WeChat device_info / Alipay terminal_id.
    pub device: String,
    pub subject: String,
    pub code_masked: String,
    pub behaviour: Behaviour,
    pub state: OrderState,
    pub created: DateTime<Local>,
    pub paid_at: Option<DateTime<Local>>,
    pub refunds: Vec<SimRefund>,
    pub revoke_calls: u32,
    /// How many times money was taken for this order (must never exceed 1).
    pub charges: u32,
    /// The cashier the pay request named (Alipay `operator_id`, an
    /// acquirer's `op_user_id`), where the gateway has a field for it.
    pub operator: Option<String>,
    confirm_at: Option<Instant>,
    /// When a customer who gives up does so.
    fail_at: Option<Instant>,
    /// When the order was created, on the monotonic clock.
    created_mono: Instant,
    code_hash: u64,
}

impl Order {
    /// Time since the pay request created the order.
    pub fn age(&self) -> Duration {
        self.created_mono.elapsed()
    }

    /// The part of the amount a coupon paid: nothing but for the coupon
    /// behaviour, which leaves the customer at least one fen to pay.
    pub fn coupon(&self) -> Fen {
        match self.behaviour {
            Behaviour::Coupon(n) => Fen(u64::from(n)
                .saturating_mul(100)
                .min(self.amount.0.saturating_sub(1))),
            _ => Fen(0),
        }
    }

    /// What the customer paid from the wallet.
    pub fn customer_paid(&self) -> Fen {
        Fen(self.amount.0 - self.coupon().0)
    }

    pub fn refunded(&self) -> Fen {
        Fen(self
            .refunds
            .iter()
            .filter(|r| r.holds())
            .map(|r| r.amount.0)
            .sum())
    }

    /// Money the merchant keeps from this order: refunds count once landed.
    pub fn money_kept(&self) -> u64 {
        if self.charges == 0 {
            return 0;
        }
        let back: u64 = self
            .refunds
            .iter()
            .filter(|r| r.returned())
            .map(|r| r.amount.0)
            .sum();
        self.amount.0.saturating_sub(back)
    }
}

/// What a pay request leads to, before the dialect words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayOutcome {
    Paid(Order),
    /// Waiting for the customer to confirm on the phone.
    UserPaying(Order),
    /// The bank said no: no money moved. The order is kept as `Failed`.
    InsufficientFunds,
    /// The code is expired or was already used: no order was created.
    CodeExpired,
    CodeUsed,
    /// Answer "system error" (the order may or may not be paid).
    SystemError(Order),
    /// The bank failed the payment; the order is kept as `Failed`.
    BankError(Order),
    /// Paid; the answer must come this many time units late.
    Late(Order, Duration),
    /// Paid; the answer must be a proxy's HTTP 502 page.
    BadGateway(Order),
    /// Failed for a system reason, answered without a signature.
    SystemBusy(Order),
    /// Money taken, and the answer must be lost on the way back.
    AnswerLost(Order),
    /// The same out_trade_no was already submitted: its order as it stands,
    /// and whether this request differs (another code or amount).
    Existing {
        order: Order,
        mismatch: bool,
    },
}

impl PartialEq for Order {
    fn eq(&self, other: &Self) -> bool {
        self.out_trade_no == other.out_trade_no && self.state == other.state
    }
}
impl Eq for Order {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    Done(RevokeEffect),
    /// The customer's behaviour asks for the revoke to be retried.
    Retry,
    /// The customer is on the password screen (WeChat refuses a reverse
    /// then with USERPAYING).
    UserPaying,
    /// Refused for good: the order was refunded, or is past the window in
    /// which it may be revoked.
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A merchant refund exists: a revoke cannot follow it.
    Refunded,
    /// Older than the dialect's revoke window.
    TooLate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Refunded(SimRefund),
    NotFound,
    NotPaid,
    /// More than what is left to refund, or a refund_no reused with another amount.
    Rejected(&'static str),
}

pub struct Ledger {
    inner: Mutex<Inner>,
    time_unit: Duration,
    early_reverses: std::sync::atomic::AtomicU32,
}

/// WeChat closes an unpaid payment-code order by itself 45 s after it was
/// created (gateway-facts.md §W5); in time units here.
pub const WECHAT_AUTO_CLOSE_UNITS: u32 = 45;

#[derive(Default)]
struct Inner {
    orders: BTreeMap<String, Order>,
    used_codes: HashSet<u64>,
    /// When each code handed out by [`Ledger::issue_code`] was shown.
    issued: std::collections::HashMap<u64, Instant>,
    seq: u64,
    issue_seq: u64,
}

/// A payment code is good for about a minute after the customer's app
/// shows it (gateway-facts.md §W12, §A10); in time units here.
pub const CODE_LIFETIME_UNITS: u32 = 60;

fn hash_code(code: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    code.hash(&mut h);
    h.finish()
}

impl Ledger {
    pub fn new(time_unit: Duration) -> Ledger {
        Ledger {
            inner: Mutex::new(Inner::default()),
            time_unit,
            early_reverses: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the ledger as it was.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh code of `provider`'s asking for `behaviour`, as a customer's
    /// app shows it now: it expires [`CODE_LIFETIME_UNITS`] later. (Codes
    /// typed by hand, never issued, expire only by behaviour.)
    pub fn issue_code(&self, provider: Provider, behaviour: Behaviour) -> String {
        let mut inner = self.lock();
        inner.issue_seq += 1;
        let code = behaviour.code(provider, 9_000_000_000_000 + inner.issue_seq);
        inner.issued.insert(hash_code(&code), Instant::now());
        code
    }

    /// Looks at every open order whose customer acted since the last look:
    /// confirmed, gave up, or (WeChat) was closed by the gateway itself.
    fn settle(inner: &mut Inner, unit: Duration) {
        let now = Instant::now();
        for o in inner.orders.values_mut() {
            if o.state != OrderState::Open {
                continue;
            }
            let auto_close = (o.provider == Provider::Wechat)
                .then(|| o.created_mono + unit * WECHAT_AUTO_CLOSE_UNITS);
            let first = [o.confirm_at, o.fail_at, auto_close]
                .into_iter()
                .flatten()
                .filter(|t| *t <= now)
                .min();
            let Some(first) = first else { continue };
            if Some(first) == o.confirm_at {
                o.state = OrderState::Paid;
                o.paid_at = Some(Local::now());
                o.charges += 1;
            } else if Some(first) == o.fail_at {
                o.state = OrderState::Failed;
            } else {
                o.state = OrderState::Revoked(RevokeEffect::Closed);
            }
            o.confirm_at = None;
            o.fail_at = None;
        }
    }

    /// Makes an order look `age` older (its creation and payment times on
    /// the wall clock), so tests reach windows counted in days.
    pub fn backdate(&self, out_trade_no: &str, age: Duration) {
        let mut inner = self.lock();
        if let Some(o) = inner.orders.get_mut(out_trade_no) {
            let by = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::zero());
            o.created -= by;
            o.paid_at = o.paid_at.map(|t| t - by);
        }
    }

    fn next_id(inner: &mut Inner, provider: Provider) -> String {
        inner.seq += 1;
        let day = Local::now().format("%Y%m%d");
        match provider {
            // 4200 + ... is how WeChat transaction ids look (28 digits).
            Provider::Wechat => format!("4200{day}{:016}", inner.seq),
            // Alipay trade_no: date + "22" + digits (28 digits).
            Provider::Alipay => format!("{day}22{:018}", inner.seq),
            // An acquirer's own order number for a UnionPay payment.
            Provider::Unionpay => format!("{day}62{:018}", inner.seq),
        }
    }

    #[allow(clippy::too_many_arguments)]
    // One function: the behaviour table of a pay, as the simulator's documents describe it, reads best as one match.
    pub fn pay(
        &self,
        provider: Provider,
        out_trade_no: &str,
        amount: Fen,
        code: &str,
        device: &str,
        subject: &str,
    ) -> PayOutcome {
        let mut inner = self.lock();
        Self::settle(&mut inner, self.time_unit);
        let code_hash = hash_code(code);
        if let Some(o) = inner.orders.get(out_trade_no) {
            let mismatch = o.code_hash != code_hash || o.amount != amount;
            return PayOutcome::Existing {
                order: o.clone(),
                mismatch,
            };
        }
        let behaviour = Behaviour::of_code(code);
        if behaviour == Behaviour::ExpiredCode {
            return PayOutcome::CodeExpired;
        }
        let expired = inner
            .issued
            .get(&code_hash)
            .is_some_and(|t| t.elapsed() > self.time_unit * CODE_LIFETIME_UNITS);
        if expired {
            return PayOutcome::CodeExpired;
        }
        if !inner.used_codes.insert(code_hash) {
            // A payment code is single-use, even when the payment failed.
            return PayOutcome::CodeUsed;
        }
        let now = Local::now();
        let mut order = Order {
            provider,
            out_trade_no: out_trade_no.to_string(),
            transaction_id: Self::next_id(&mut inner, provider),
            amount,
            device: device.to_string(),
            subject: subject.to_string(),
            code_masked: mask_code(code),
            behaviour,
            state: OrderState::Open,
            created: now,
            paid_at: None,
            refunds: Vec::new(),
            revoke_calls: 0,
            charges: 0,
            operator: None,
            confirm_at: None,
            fail_at: None,
            created_mono: Instant::now(),
            code_hash,
        };
        let pay_now = |o: &mut Order| {
            o.state = OrderState::Paid;
            o.paid_at = Some(now);
            o.charges = 1;
        };
        let outcome = match behaviour {
            Behaviour::PaysAtOnce
            | Behaviour::RefundCloses
            | Behaviour::RefundChange
            | Behaviour::RefundSystemError
            | Behaviour::Coupon(_) => {
                pay_now(&mut order);
                PayOutcome::Paid(order.clone())
            }
            Behaviour::ConfirmsAfter(n) => {
                order.confirm_at = Some(Instant::now() + self.time_unit * n);
                if n == 0 {
                    pay_now(&mut order);
                    order.confirm_at = None;
                }
                PayOutcome::UserPaying(order.clone())
            }
            Behaviour::NeverConfirms
            | Behaviour::RevokeRetries(_)
            | Behaviour::RevokeFails
            | Behaviour::ReverseWhilePaying(_) => PayOutcome::UserPaying(order.clone()),
            Behaviour::GivesUp(n) => {
                order.fail_at = Some(Instant::now() + self.time_unit * n);
                PayOutcome::UserPaying(order.clone())
            }
            Behaviour::BankError => {
                order.state = OrderState::Failed;
                PayOutcome::BankError(order.clone())
            }
            Behaviour::SlowAnswer(n) => {
                pay_now(&mut order);
                PayOutcome::Late(order.clone(), self.time_unit * n)
            }
            Behaviour::BadGateway => {
                pay_now(&mut order);
                PayOutcome::BadGateway(order.clone())
            }
            Behaviour::SystemBusy => {
                order.state = OrderState::Failed;
                PayOutcome::SystemBusy(order.clone())
            }
            Behaviour::InsufficientFunds => {
                order.state = OrderState::Failed;
                inner.orders.insert(out_trade_no.to_string(), order);
                return PayOutcome::InsufficientFunds;
            }
            Behaviour::SystemErrorPaid => {
                pay_now(&mut order);
                PayOutcome::SystemError(order.clone())
            }
            Behaviour::SystemErrorUnpaid => PayOutcome::SystemError(order.clone()),
            Behaviour::AnswerLost => {
                pay_now(&mut order);
                PayOutcome::AnswerLost(order.clone())
            }
            Behaviour::ExpiredCode => PayOutcome::CodeExpired,
        };
        inner.orders.insert(out_trade_no.to_string(), order);
        outcome
    }

    /// Keeps the cashier a pay request named with its order.
    pub fn note_operator(&self, out_trade_no: &str, operator: &str) {
        if let Some(o) = self.lock().orders.get_mut(out_trade_no) {
            o.operator = Some(operator.to_string());
        }
    }

    pub fn order(&self, out_trade_no: &str) -> Option<Order> {
        let mut inner = self.lock();
        Self::settle(&mut inner, self.time_unit);
        inner.orders.get(out_trade_no).cloned()
    }

    pub fn orders(&self) -> Vec<Order> {
        let mut inner = self.lock();
        Self::settle(&mut inner, self.time_unit);
        inner.orders.values().cloned().collect()
    }

    /// Revokes (WeChat reverse / Alipay cancel). Revoking an order that was
    /// never created leaves a closed tombstone, so a pay request that
    /// arrives late cannot take money for it.
    /// `window`: how long after its creation the dialect lets an order be
    /// revoked (`None`: always).
    pub fn revoke(
        &self,
        provider: Provider,
        out_trade_no: &str,
        window: Option<Duration>,
    ) -> RevokeOutcome {
        let mut inner = self.lock();
        Self::settle(&mut inner, self.time_unit);
        let Some(o) = inner.orders.get_mut(out_trade_no) else {
            let now = Local::now();
            inner.orders.insert(
                out_trade_no.to_string(),
                Order {
                    provider,
                    out_trade_no: out_trade_no.to_string(),
                    transaction_id: String::new(),
                    amount: Fen(0),
                    device: String::new(),
                    subject: String::new(),
                    code_masked: String::new(),
                    behaviour: Behaviour::NeverConfirms,
                    state: OrderState::Revoked(RevokeEffect::Closed),
                    created: now,
                    paid_at: None,
                    refunds: Vec::new(),
                    revoke_calls: 1,
                    charges: 0,
                    operator: None,
                    confirm_at: None,
                    fail_at: None,
                    created_mono: Instant::now(),
                    code_hash: 0,
                },
            );
            return RevokeOutcome::Done(RevokeEffect::Closed);
        };
        o.revoke_calls += 1;
        match o.behaviour {
            Behaviour::RevokeRetries(n) if o.revoke_calls <= n => return RevokeOutcome::Retry,
            Behaviour::RevokeFails => return RevokeOutcome::Retry,
            // Alipay closes a trade that waits for the buyer; WeChat does not.
            Behaviour::ReverseWhilePaying(n)
                if o.provider == Provider::Wechat
                    && o.state == OrderState::Open
                    && o.revoke_calls <= n =>
            {
                return RevokeOutcome::UserPaying
            }
            _ => {}
        }
        if o.refunds.iter().any(|r| !r.by_revoke) {
            return RevokeOutcome::Refused(Refusal::Refunded);
        }
        let age = (Local::now() - o.created).to_std().unwrap_or_default();
        if window.is_some_and(|w| age > w) {
            return RevokeOutcome::Refused(Refusal::TooLate);
        }
        let effect = match o.state {
            OrderState::Open | OrderState::Failed => RevokeEffect::Closed,
            OrderState::Paid => {
                let refund_id = format!("{}R", o.transaction_id);
                let amount = Fen(o.amount.0 - o.refunded().0);
                o.refunds.push(SimRefund {
                    refund_no: String::new(),
                    refund_id,
                    amount,
                    at: Local::now(),
                    by_revoke: true,
                    lands_at: None,
                    ends: RefundEnd::Returned,
                    made: Instant::now(),
                });
                RevokeEffect::Refunded
            }
            OrderState::Revoked(effect) => effect,
        };
        o.state = OrderState::Revoked(effect);
        o.confirm_at = None;
        RevokeOutcome::Done(effect)
    }

    /// Refunds part or all of a paid order at once; idempotent on `refund_no`.
    pub fn refund(&self, out_trade_no: &str, refund_no: &str, amount: Fen) -> RefundOutcome {
        self.refund_landing(out_trade_no, refund_no, amount, 0)
    }

    /// A refund whose money lands `units` time units later.
    pub fn refund_landing(
        &self,
        out_trade_no: &str,
        refund_no: &str,
        amount: Fen,
        units: u32,
    ) -> RefundOutcome {
        let lands_at = (units > 0).then(|| Instant::now() + self.time_unit * units);
        let mut inner = self.lock();
        Self::settle(&mut inner, self.time_unit);
        let Some(o) = inner.orders.get_mut(out_trade_no) else {
            return RefundOutcome::NotFound;
        };
        if let Some(r) = o.refunds.iter().find(|r| r.refund_no == refund_no) {
            if r.amount != amount {
                return RefundOutcome::Rejected("refund_no reused with another amount");
            }
            return RefundOutcome::Refunded(r.clone());
        }
        if o.state != OrderState::Paid {
            return RefundOutcome::NotPaid;
        }
        if amount.0 == 0 || o.refunded().0 + amount.0 > o.amount.0 {
            return RefundOutcome::Rejected("refund exceeds what is left to refund");
        }
        let r = SimRefund {
            refund_no: refund_no.to_string(),
            refund_id: format!("{}R{}", o.transaction_id, o.refunds.len() + 1),
            amount,
            at: Local::now(),
            by_revoke: false,
            lands_at,
            ends: match o.behaviour {
                Behaviour::RefundCloses => RefundEnd::Closed,
                Behaviour::RefundChange => RefundEnd::Change,
                _ => RefundEnd::Returned,
            },
            made: Instant::now(),
        };
        o.refunds.push(r.clone());
        RefundOutcome::Refunded(r)
    }

    /// The order of `provider`'s other than `out_trade_no` that already
    /// holds the refund number `refund_no`.
    pub fn refund_no_elsewhere(
        &self,
        provider: Provider,
        out_trade_no: &str,
        refund_no: &str,
    ) -> Option<String> {
        let inner = self.lock();
        inner
            .orders
            .values()
            .filter(|o| o.provider == provider && o.out_trade_no != out_trade_no)
            .find(|o| o.refunds.iter().any(|r| r.refund_no == refund_no))
            .map(|o| o.out_trade_no.clone())
    }

    /// Merchant refunds of the order so far, and how long ago the last
    /// was made.
    pub fn refund_history(&self, out_trade_no: &str) -> (usize, Option<Duration>) {
        let inner = self.lock();
        let Some(o) = inner.orders.get(out_trade_no) else {
            return (0, None);
        };
        let mine: Vec<&SimRefund> = o.refunds.iter().filter(|r| !r.by_revoke).collect();
        let last = mine.iter().map(|r| r.made.elapsed()).min();
        (mine.len(), last)
    }

    /// A reverse came sooner after its pay than the gateway allows.
    pub fn note_early_reverse(&self) {
        self.early_reverses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many reverses came too soon: a client that keeps the rule has 0.
    pub fn early_reverses(&self) -> u32 {
        self.early_reverses
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One "second" of simulated behaviour.
    pub fn time_unit(&self) -> Duration {
        self.time_unit
    }

    pub fn refund_of(&self, out_trade_no: &str, refund_no: &str) -> Option<SimRefund> {
        let inner = self.lock();
        inner
            .orders
            .get(out_trade_no)?
            .refunds
            .iter()
            .find(|r| r.refund_no == refund_no)
            .cloned()
    }

    /// Money the merchant keeps from `out_trade_no` (0 if unknown).
    pub fn money_kept(&self, out_trade_no: &str) -> u64 {
        self.order(out_trade_no).map_or(0, |o| o.money_kept())
    }

    /// Total money kept over every order whose out_trade_no starts with `prefix`.
    pub fn money_kept_with_prefix(&self, prefix: &str) -> u64 {
        self.orders()
            .iter()
            .filter(|o| o.out_trade_no.starts_with(prefix))
            .map(Order::money_kept)
            .sum()
    }
}

#[cfg(test)]
mod tests;
