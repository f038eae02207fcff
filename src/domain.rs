//! The words of the domain: money in fen, payment providers, auth codes,
//! order numbers and the `out_trade_no` of an attempt.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of money in fen (1/100 yuan). Never a float.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an amount in yuan with at most two decimals: {0:?}")]
pub struct BadAmount(pub String);

impl Fen {
    /// Parses a yuan string such as `"12.34"`, `"0.01"`, `"5"` or `"5.1"`
    /// exactly. With `strict_two_decimals` the string must have exactly two
    /// decimals (what Alipay sends); otherwise zero to two are accepted (the
    /// CLI's `--amount`). Signs, exponents and spaces are rejected.
    pub fn parse_yuan(s: &str, strict_two_decimals: bool) -> Result<Fen, BadAmount> {
        let bad = || BadAmount(s.to_string());
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        if int.is_empty() || int.len() > 12 || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let frac_fen = match frac {
            None if strict_two_decimals => return Err(bad()),
            None => 0,
            Some(f) => {
                let ok_len = if strict_two_decimals {
                    f.len() == 2
                } else {
                    (1..=2).contains(&f.len())
                };
                if !ok_len || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let v: u64 = f.parse().map_err(|_| bad())?;
                if f.len() == 1 {
                    v * 10
                } else {
                    v
                }
            }
        };
        let yuan: u64 = int.parse().map_err(|_| bad())?;
        yuan.checked_mul(100)
            .and_then(|y| y.checked_add(frac_fen))
            .map(Fen)
            .ok_or_else(bad)
    }

    /// Parses a signed yuan amount with exactly two decimals, as bills print
    /// refunds (`-0.01`). Returns the sign separately.
    pub fn parse_signed_yuan(s: &str) -> Result<(bool, Fen), BadAmount> {
        match s.strip_prefix('-') {
            Some(rest) => Fen::parse_yuan(rest, true).map(|f| (true, f)),
            None => Fen::parse_yuan(s, true).map(|f| (false, f)),
        }
    }

    /// The yuan string with exactly two decimals: 1234 -> "12.34".
    pub fn to_yuan(self) -> String {
        format!("{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "¥{}", self.to_yuan())
    }
}

/// What the customer pays with: the wallet whose payment code was
/// scanned. Which channel carries the payment (the wallet's own gateway, or
/// an acquirer's) is the routing's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Wechat,
    Alipay,
    Unionpay,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Wechat, Provider::Alipay, Provider::Unionpay];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Wechat => "wechat",
            Provider::Alipay => "alipay",
            Provider::Unionpay => "unionpay",
        }
    }

    /// `[self]`, for a channel that carries this provider only.
    pub fn alone(self) -> &'static [Provider] {
        match self {
            Provider::Wechat => &[Provider::Wechat],
            Provider::Alipay => &[Provider::Alipay],
            Provider::Unionpay => &[Provider::Unionpay],
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whose payment code `digits` is, by length and prefix
    /// (payment-rules.md §19): WeChat 18 digits from 10-15, Alipay 16-24
    /// digits from 25-30, UnionPay 19 digits from 62.
    pub fn of_code(digits: &str) -> Option<Provider> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u32 = digits.get(..2)?.parse().ok()?;
        match (digits.len(), prefix) {
            (18, 10..=15) => Some(Provider::Wechat),
            (16..=24, 25..=30) => Some(Provider::Alipay),
            (19, 62) => Some(Provider::Unionpay),
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer's payment code (付款码). The full digits leave this type only
/// through [`AuthCode::expose`], which gateway clients call to build the pay
/// request; `Debug` and `Display` show the masked form.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCode {
    digits: String,
    provider: Provider,
}

impl AuthCode {
    /// A payment code of `provider`'s; [`recognise`] tells whose a scanned
    /// string is.
    pub fn new(digits: &str, provider: Provider) -> AuthCode {
        AuthCode {
            digits: digits.to_string(),
            provider,
        }
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// First 4 and last 4 digits, the rest `*`.
    pub fn masked(&self) -> String {
        mask_code(&self.digits)
    }

    /// The full code, for the gateway request only.
    pub fn expose(&self) -> &str {
        &self.digits
    }
}

impl fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthCode({})", self.masked())
    }
}

impl fmt::Display for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Recognises a payment code (payment-rules.md §19). Anything else, URLs
/// and letters included, is `None`.
pub fn recognise(s: &str) -> Option<AuthCode> {
    Provider::of_code(s).map(|p| AuthCode::new(s, p))
}

/// Masks anything that might be a code: first 4 and last 4 characters kept.
/// Short strings are masked whole.
pub fn mask_code(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let mut out = String::with_capacity(chars.len());
    out.extend(&chars[..4]);
    out.extend(std::iter::repeat_n('*', chars.len() - 8));
    out.extend(&chars[chars.len() - 4..]);
    out
}

/// 1-32 characters of `[A-Za-z0-9_-]`: the form of till ids, order numbers
/// and refund numbers (docs/operations.md#configure, §3).
pub fn is_valid_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The `out_trade_no` of attempt `seq` of sale `order_no` at till `till_id`
/// (payment-rules.md §1): a pure function of the three, at most 32 characters of
/// `[A-Za-z0-9_]`. Alipay documents only letters, digits and `_` for
/// `out_trade_no`, so a `-` in the till id or order number, or a result that
/// would be too long, switches to a hashed form that keeps a readable prefix.
pub fn out_trade_no(till_id: &str, order_no: &str, seq: u32) -> String {
    let plain = format!("{till_id}_{order_no}_{seq}");
    let alnum = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    if alnum(till_id) && alnum(order_no) && plain.len() <= 32 {
        return plain;
    }
    hashed(
        till_id,
        &format!("{till_id}\n{order_no}\n{seq}"),
        &format!("_{seq}"),
    )
}

/// The refund number the gateway sees for the POS refund number
/// `refund_no` at till `till_id`: WeChat wants `out_refund_no` unique across
/// the whole merchant account, and every till of a shop numbers its own
/// refunds, so the till id goes in, as it does in `out_trade_no`. At most
/// 32 characters of `[A-Za-z0-9_]`.
pub fn out_refund_no(till_id: &str, refund_no: &str) -> String {
    let plain = format!("{till_id}_R{refund_no}");
    let alnum = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    if alnum(till_id) && alnum(refund_no) && plain.len() <= 32 {
        return plain;
    }
    hashed(till_id, &format!("{till_id}\nrefund\n{refund_no}"), "_R")
}

/// A readable prefix of the till id, 20 hex digits of SHA-256 over `key`,
/// then `suffix`: 32 characters at most.
fn hashed(till_id: &str, key: &str, suffix: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let hex: String = digest
        .as_ref()
        .iter()
        .take(10)
        .map(|b| format!("{b:02x}"))
        .collect();
    let prefix: String = till_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    let suffix = format!("_{hex}{suffix}");
    let room = 32usize.saturating_sub(suffix.len());
    format!("{}{}", &prefix[..prefix.len().min(room)], suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_strings_convert_exactly_both_ways() {
        for (s, fen) in [
            ("0.01", 1),
            ("0.10", 10),
            ("1.00", 100),
            ("999999.99", 99_999_999),
            ("12.34", 1234),
        ] {
            assert_eq!(Fen::parse_yuan(s, true), Ok(Fen(fen)), "{s}");
            assert_eq!(Fen(fen).to_yuan(), s);
        }
        for bad in [
            "0.1", "1", "1.001", "-1.00", "1.0a", "", ".50", "1e2", " 1.00",
        ] {
            assert!(Fen::parse_yuan(bad, true).is_err(), "{bad} accepted");
        }
        assert_eq!(Fen::parse_yuan("0.1", false), Ok(Fen(10)));
        assert_eq!(Fen::parse_yuan("5", false), Ok(Fen(500)));
        assert!(Fen::parse_yuan("1.001", false).is_err());
        assert_eq!(Fen::parse_signed_yuan("-0.01"), Ok((true, Fen(1))));
    }

    #[test]
    fn masked_code_keeps_first_and_last_four() {
        let code = AuthCode::new("134567890123456789", Provider::Wechat);
        assert_eq!(code.masked(), "1345**********6789");
        assert_eq!(format!("{code:?}"), "AuthCode(1345**********6789)");
        assert_eq!(format!("{code}"), "1345**********6789");
    }

    #[test]
    fn out_refund_no_names_the_till_and_stays_short() {
        assert_eq!(out_refund_no("T1", "R100"), "T1_RR100");
        assert_ne!(out_refund_no("T1", "R100"), out_refund_no("T2", "R100"));
        let long = out_refund_no("S001-T03", "REFUND-2026-11-23-000123-X");
        assert!(long.len() <= 32, "{long}");
        assert!(long.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_eq!(
            long,
            out_refund_no("S001-T03", "REFUND-2026-11-23-000123-X")
        );
        assert_ne!(out_refund_no("a-b", "c"), out_refund_no("a", "b-c"));
    }

    #[test]
    fn out_trade_no_is_deterministic_short_and_distinct() {
        assert_eq!(out_trade_no("T1", "A100", 1), "T1_A100_1");
        let long = out_trade_no("S001-T03", "ORDER-2026-11-23-000123", 2);
        assert!(long.len() <= 32, "{long}");
        assert!(long.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_eq!(long, out_trade_no("S001-T03", "ORDER-2026-11-23-000123", 2));
        assert_ne!(long, out_trade_no("S001-T03", "ORDER-2026-11-23-000123", 3));
        assert_ne!(out_trade_no("a-b", "c", 1), out_trade_no("a", "b-c", 1));
        let widest = out_trade_no(&"x".repeat(32), &"y".repeat(32), 4_000_000_000);
        assert!(widest.len() <= 32, "{widest}");
    }
}
