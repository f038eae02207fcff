//! Customer behaviours of the simulator, chosen by the payment code itself so
//! that a cashier in training mode (or a test) picks one by scanning or typing
//! a ready-made code.
//!
//! Layout: the provider's two-digit prefix, then two digits naming the
//! behaviour, then one digit `N` (its parameter), then any digits. A code
//! whose behaviour digits name nothing pays at once, like most customers.

use crate::domain::Provider;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 00: pays at once (no password needed).
    PaysAtOnce,
    /// 01: the customer confirms on the phone after `N` time units.
    ConfirmsAfter(u32),
    /// 02: the customer never confirms.
    NeverConfirms,
    /// 03: insufficient balance.
    InsufficientFunds,
    /// 04: the code has expired.
    ExpiredCode,
    /// 05: the pay call answers "system error" although the money was taken.
    SystemErrorPaid,
    /// 06: the pay call answers "system error" and nothing was taken.
    SystemErrorUnpaid,
    /// 07: never confirms; the revoke asks to be retried `N` times first.
    RevokeRetries(u32),
    /// 08: never confirms; every revoke fails and asks to be retried.
    RevokeFails,
    /// 09: the money is taken but the answer to the pay call is lost.
    AnswerLost,
    /// 10: the customer is asked for the password and, after `N` time
    /// units, gives up (or enters it wrong, or runs short): WeChat's query
    /// turns to PAYERROR, Alipay's to TRADE_CLOSED.
    GivesUp(u32),
    /// 11: the bank fails the payment: WeChat answers BANKERROR (Alipay
    /// ACQ.SYSTEM_ERROR); nothing is taken, and the query shows it failed.
    BankError,
    /// 12: the customer stays on the password screen: the first `N`
    /// reverses are refused with USERPAYING ("正在支付中不能发起撤销").
    ReverseWhilePaying(u32),
    /// 13: pays at once; a refund stays PROCESSING, then closes
    /// (REFUNDCLOSE): the money never went back.
    RefundCloses,
    /// 14: pays at once; a refund stays PROCESSING, then needs the merchant
    /// to act (CHANGE: the customer's card is gone).
    RefundChange,
    /// 15: pays at once; the first refund call answers SYSTEMERROR although
    /// the refund went through.
    RefundSystemError,
    /// 16: pays at once, but the answer comes `N` time units late.
    SlowAnswer(u32),
    /// 17: pays, but a proxy in front of the gateway answers HTTP 502 with
    /// an HTML error page.
    BadGateway,
    /// 18: the gateway fails the request for a system reason, unsigned:
    /// WeChat `return_code=FAIL` ("系统繁忙"), Alipay an `error_response`
    /// 20000 without `sign`. Nothing is taken; the query shows it failed.
    SystemBusy,
    /// 19: pays at once, `N` yuan of it with a coupon (at most all but one
    /// fen): WeChat's `cash_fee` is the rest and `coupon_fee` the coupon,
    /// Alipay's `buyer_pay_amount` the rest.
    Coupon(u32),
}

impl Behaviour {
    pub const ALL: [Behaviour; 20] = [
        Behaviour::PaysAtOnce,
        Behaviour::ConfirmsAfter(3),
        Behaviour::NeverConfirms,
        Behaviour::InsufficientFunds,
        Behaviour::ExpiredCode,
        Behaviour::SystemErrorPaid,
        Behaviour::SystemErrorUnpaid,
        Behaviour::RevokeRetries(2),
        Behaviour::RevokeFails,
        Behaviour::AnswerLost,
        Behaviour::GivesUp(2),
        Behaviour::BankError,
        Behaviour::ReverseWhilePaying(2),
        Behaviour::RefundCloses,
        Behaviour::RefundChange,
        Behaviour::RefundSystemError,
        Behaviour::SlowAnswer(3),
        Behaviour::BadGateway,
        Behaviour::SystemBusy,
        Behaviour::Coupon(2),
    ];

    /// The behaviour a payment code asks for.
    pub fn of_code(code: &str) -> Behaviour {
        let digit = |i: usize| {
            code.as_bytes()
                .get(i)
                .map(|b| u32::from(b.wrapping_sub(b'0')))
        };
        let n = digit(4).filter(|d| *d <= 9).unwrap_or(0);
        match (digit(2), digit(3)) {
            (Some(0), Some(1)) => Behaviour::ConfirmsAfter(n),
            (Some(0), Some(2)) => Behaviour::NeverConfirms,
            (Some(0), Some(3)) => Behaviour::InsufficientFunds,
            (Some(0), Some(4)) => Behaviour::ExpiredCode,
            (Some(0), Some(5)) => Behaviour::SystemErrorPaid,
            (Some(0), Some(6)) => Behaviour::SystemErrorUnpaid,
            (Some(0), Some(7)) => Behaviour::RevokeRetries(n),
            (Some(0), Some(8)) => Behaviour::RevokeFails,
            (Some(0), Some(9)) => Behaviour::AnswerLost,
            (Some(1), Some(0)) => Behaviour::GivesUp(n),
            (Some(1), Some(1)) => Behaviour::BankError,
            (Some(1), Some(2)) => Behaviour::ReverseWhilePaying(n),
            (Some(1), Some(3)) => Behaviour::RefundCloses,
            (Some(1), Some(4)) => Behaviour::RefundChange,
            (Some(1), Some(5)) => Behaviour::RefundSystemError,
            (Some(1), Some(6)) => Behaviour::SlowAnswer(n),
            (Some(1), Some(7)) => Behaviour::BadGateway,
            (Some(1), Some(8)) => Behaviour::SystemBusy,
            (Some(1), Some(9)) => Behaviour::Coupon(n),
            _ => Behaviour::PaysAtOnce,
        }
    }

    fn digits(self) -> (u32, u32) {
        match self {
            Behaviour::PaysAtOnce => (0, 0),
            Behaviour::ConfirmsAfter(n) => (1, n),
            Behaviour::NeverConfirms => (2, 0),
            Behaviour::InsufficientFunds => (3, 0),
            Behaviour::ExpiredCode => (4, 0),
            Behaviour::SystemErrorPaid => (5, 0),
            Behaviour::SystemErrorUnpaid => (6, 0),
            Behaviour::RevokeRetries(n) => (7, n),
            Behaviour::RevokeFails => (8, 0),
            Behaviour::AnswerLost => (9, 0),
            Behaviour::GivesUp(n) => (10, n),
            Behaviour::BankError => (11, 0),
            Behaviour::ReverseWhilePaying(n) => (12, n),
            Behaviour::RefundCloses => (13, 0),
            Behaviour::RefundChange => (14, 0),
            Behaviour::RefundSystemError => (15, 0),
            Behaviour::SlowAnswer(n) => (16, n),
            Behaviour::BadGateway => (17, 0),
            Behaviour::SystemBusy => (18, 0),
            Behaviour::Coupon(n) => (19, n),
        }
    }

    /// What a cashier sees in the demo's list of ready-made codes.
    pub fn describe(self) -> String {
        match self {
            Behaviour::PaysAtOnce => "pays at once".into(),
            Behaviour::ConfirmsAfter(n) => format!("confirms on the phone after {n} s"),
            Behaviour::NeverConfirms => "never confirms (revoked)".into(),
            Behaviour::InsufficientFunds => "insufficient funds".into(),
            Behaviour::ExpiredCode => "expired code".into(),
            Behaviour::SystemErrorPaid => "system error, but paid".into(),
            Behaviour::SystemErrorUnpaid => "system error, not paid".into(),
            Behaviour::RevokeRetries(n) => format!("never confirms; revoke retried {n} times"),
            Behaviour::RevokeFails => "never confirms; revoke keeps failing".into(),
            Behaviour::AnswerLost => "paid, but the answer is lost".into(),
            Behaviour::GivesUp(n) => format!("asked for the password, gives up after {n} s"),
            Behaviour::BankError => "the bank fails the payment".into(),
            Behaviour::ReverseWhilePaying(n) => {
                format!("stays on the password screen; {n} reverses refused")
            }
            Behaviour::RefundCloses => "pays; a refund is processed, then closed".into(),
            Behaviour::RefundChange => {
                "pays; a refund is processed, then needs the merchant".into()
            }
            Behaviour::RefundSystemError => {
                "pays; the refund answers a system error, yet goes through".into()
            }
            Behaviour::SlowAnswer(n) => format!("pays; the answer comes {n} s late"),
            Behaviour::BadGateway => "pays; a proxy answers 502 with an HTML page".into(),
            Behaviour::SystemBusy => "the gateway is busy: an unsigned system failure".into(),
            Behaviour::Coupon(n) => format!("pays at once, {n} yuan of it with a coupon"),
        }
    }

    /// A payment code for `provider` that asks for this behaviour. `serial`
    /// makes codes distinct (a real code is single-use).
    pub fn code(self, provider: Provider, serial: u64) -> String {
        let (b, n) = self.digits();
        match provider {
            // 2 + 2 + 1 + 13 = 18 digits: WeChat's form, and one of Alipay's.
            Provider::Wechat => format!("13{b:02}{n}{:013}", serial % 10_000_000_000_000),
            Provider::Alipay => format!("28{b:02}{n}{:013}", serial % 10_000_000_000_000),
            // 2 + 2 + 1 + 14 = 19 digits, UnionPay's form.
            Provider::Unionpay => format!("62{b:02}{n}{:014}", serial % 100_000_000_000_000),
        }
    }
}

/// A WeChat payment code as WeChat documents it: 18 digits, 10-15 first.
pub fn is_wechat_code(s: &str) -> bool {
    s.len() == 18 && digits_with_prefix(s, 10..=15)
}

/// An Alipay payment code as Alipay documents it: 16-24 digits, 25-30 first.
pub fn is_alipay_code(s: &str) -> bool {
    (16..=24).contains(&s.len()) && digits_with_prefix(s, 25..=30)
}

/// A UnionPay payment code as acquirers document it: 19 digits, 62 first.
pub fn is_unionpay_code(s: &str) -> bool {
    s.len() == 19 && digits_with_prefix(s, 62..=62)
}

fn digits_with_prefix(s: &str, first: std::ops::RangeInclusive<u32>) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
        && s.get(..2)
            .and_then(|p| p.parse().ok())
            .is_some_and(|p| first.contains(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_behaviour_round_trips_through_a_valid_code() {
        for provider in [Provider::Wechat, Provider::Alipay] {
            for (i, b) in Behaviour::ALL.iter().enumerate() {
                let code = b.code(provider, 4_200 + i as u64);
                // The till takes the code as the provider's.
                let taken = crate::gateway::recognise(&code).map(|c| c.provider());
                assert_eq!(taken, Some(provider), "{code}");
                assert_eq!(Behaviour::of_code(&code), *b, "{code}");
            }
        }
        assert_eq!(
            Behaviour::of_code("134567890123456789"),
            Behaviour::PaysAtOnce
        );
    }

    /// The table of ready-made codes in docs/simulator.md stays true.
    #[test]
    fn the_documented_example_codes_ask_for_their_behaviours() {
        let doc = include_str!("../../docs/simulator.md");
        let mut rows = 0;
        for line in doc
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains('`'))
        {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Ok(bb) = cells[1].parse::<u32>() else {
                continue;
            };
            for (cell, provider) in [(cells[3], Provider::Wechat), (cells[4], Provider::Alipay)] {
                let code = cell.trim_matches('`');
                let b = Behaviour::of_code(code);
                assert_eq!(b.digits().0, bb, "{line}");
                let taken = crate::gateway::recognise(code).map(|c| c.provider());
                assert_eq!(taken, Some(provider), "{code}");
            }
            rows += 1;
        }
        assert_eq!(
            rows,
            Behaviour::ALL.len(),
            "every behaviour is in the table"
        );
    }
}
