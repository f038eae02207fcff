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
}

impl Behaviour {
    pub const ALL: [Behaviour; 10] = [
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
        }
    }

    /// A payment code for `provider` that asks for this behaviour. `serial`
    /// makes codes distinct (a real code is single-use).
    pub fn code(self, provider: Provider, serial: u64) -> String {
        let (b, n) = self.digits();
        let prefix = match provider {
            Provider::Wechat => "13",
            Provider::Alipay => "28",
        };
        // 2 + 2 + 1 + 13 = 18 digits: valid for both providers.
        format!("{prefix}{b:02}{n}{:013}", serial % 10_000_000_000_000)
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
}
