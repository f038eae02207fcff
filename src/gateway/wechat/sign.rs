//! WeChat Pay v2 signatures (gateway-facts.md §W2): MD5 or HMAC-SHA256 over the
//! byte-ordered `k=v&…&key=KEY` string, empty values and `sign` left out,
//! uppercase hex.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// The v2 signature algorithms; HMAC-SHA256 unless the merchant's
/// account is set for MD5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignType {
    Md5,
    HmacSha256,
}

/// The wire name of a sign type, as sent in `sign_type`.
pub fn sign_type_name(t: SignType) -> &'static str {
    match t {
        SignType::Md5 => "MD5",
        SignType::HmacSha256 => "HMAC-SHA256",
    }
}

/// Reads a request's `sign_type`: absent means MD5 (WeChat's default).
pub fn parse_sign_type(value: Option<&str>) -> Option<SignType> {
    match value {
        None | Some("") | Some("MD5") => Some(SignType::Md5),
        Some("HMAC-SHA256") => Some(SignType::HmacSha256),
        Some(_) => None,
    }
}

/// `stringA` of the doc: every non-empty field but `sign`, in byte order of
/// the names (a `BTreeMap<String, _>` iterates in exactly that order).
pub fn string_a(params: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in params {
        // The doc drops empty values; `sign` never signs itself.
        if v.is_empty() || k == "sign" {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The signature of `params` with `key`, uppercase hex.
pub fn sign(params: &BTreeMap<String, String>, key: &str, t: SignType) -> String {
    let mut text = string_a(params);
    if !text.is_empty() {
        text.push('&');
    }
    text.push_str("key=");
    text.push_str(key);
    match t {
        SignType::Md5 => hex_upper(&Md5::digest(text.as_bytes())),
        SignType::HmacSha256 => {
            // The HMAC message still carries `&key=…`: that is how WeChat
            // defines it, the key is both the HMAC key and part of the text.
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
            hex_upper(ring::hmac::sign(&k, text.as_bytes()).as_ref())
        }
    }
}

/// Does `params["sign"]` match the signature of all the other fields
/// (unknown ones included: WeChat adds fields over time)? A missing sign
/// never verifies.
pub fn verify(params: &BTreeMap<String, String>, key: &str, t: SignType) -> bool {
    let Some(given) = params.get("sign") else {
        return false;
    };
    let expected = sign(params, key, t);
    constant_time_eq(given.to_ascii_uppercase().as_bytes(), expected.as_bytes())
}

pub use crate::gateway::constant_time_eq;

fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

pub use crate::gateway::nonce;

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

    fn official() -> BTreeMap<String, String> {
        [
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn official_example_signs_as_documented() {
        let p = official();
        assert_eq!(
            string_a(&p),
            "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
        );
        assert_eq!(
            sign(&p, KEY, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
        assert_eq!(
            sign(&p, KEY, SignType::HmacSha256),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
    }

    #[test]
    fn sign_type_is_itself_signed() {
        let mut p = official();
        p.insert("sign_type".into(), "HMAC-SHA256".into());
        assert_eq!(
            sign(&p, KEY, SignType::HmacSha256),
            "2C9DF1156522C0B2B03B4DBF3BCA5CACB602CBD5CA0F9E112458CF3E9855303B"
        );
    }

    #[test]
    fn empty_values_and_sign_take_no_part() {
        let mut p = official();
        p.insert("attach".into(), String::new());
        p.insert("sign".into(), "WHATEVER".into());
        assert_eq!(
            sign(&p, KEY, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
    }

    #[test]
    fn order_is_by_bytes_not_by_culture() {
        let p: BTreeMap<String, String> =
            [("b", "1"), ("B", "2"), ("a", "3"), ("A", "4"), ("0", "5")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(string_a(&p), "0=5&A=4&B=2&a=3&b=1");
    }

    #[test]
    fn verification_needs_every_field_the_right_key_and_a_sign() {
        for t in [SignType::Md5, SignType::HmacSha256] {
            let mut p = official();
            let s = sign(&p, KEY, t);
            p.insert("sign".into(), s.clone());
            assert!(verify(&p, KEY, t), "{t:?}");
            // Lowercase hex is the same signature.
            let mut lower = p.clone();
            lower.insert("sign".into(), s.to_ascii_lowercase());
            assert!(verify(&lower, KEY, t));

            let mut tampered = p.clone();
            tampered.insert("body".into(), "tesT".into());
            assert!(!verify(&tampered, KEY, t), "tampered field verified");

            assert!(
                !verify(&p, "192006250b4c09247ec02edce69f6a2e", t),
                "wrong key verified"
            );

            let other = match t {
                SignType::Md5 => SignType::HmacSha256,
                SignType::HmacSha256 => SignType::Md5,
            };
            assert!(!verify(&p, KEY, other), "wrong sign type verified");

            let mut unsigned = p.clone();
            unsigned.remove("sign");
            assert!(!verify(&unsigned, KEY, t), "missing sign verified");

            // A field tillpay does not know, signed by the sender, verifies;
            // the same field added after signing does not.
            let mut extra = official();
            extra.insert("coupon_fee_0".into(), "100".into());
            let s = sign(&extra, KEY, t);
            extra.insert("sign".into(), s);
            assert!(verify(&extra, KEY, t));
            let mut injected = p.clone();
            injected.insert("coupon_fee_0".into(), "100".into());
            assert!(!verify(&injected, KEY, t));
        }
    }

    #[test]
    fn nonces_are_32_alphanumerics_and_differ() {
        let a = nonce();
        let b = nonce();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn sign_types_parse_from_the_wire() {
        assert_eq!(parse_sign_type(None), Some(SignType::Md5));
        assert_eq!(parse_sign_type(Some("MD5")), Some(SignType::Md5));
        assert_eq!(
            parse_sign_type(Some("HMAC-SHA256")),
            Some(SignType::HmacSha256)
        );
        assert_eq!(parse_sign_type(Some("SHA1")), None);
        assert_eq!(sign_type_name(SignType::HmacSha256), "HMAC-SHA256");
    }
}
