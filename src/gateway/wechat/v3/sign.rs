//! WeChat Pay API v3 signatures (gateway-facts.md §W11): the
//! `WECHATPAY2-SHA256-RSA2048` Authorization header a request carries,
//! signed with the merchant's private key, and the verification of every
//! answer with the key its `Wechatpay-Serial` names: the WeChat Pay public
//! key (an id beginning `PUB_KEY_ID_`, for merchants since 2025) or a
//! platform certificate's serial, both while a merchant migrates.
//!
//! Not wired to a client yet: the v3 client is to be built on it.

use ring::signature::RsaKeyPair;

use crate::gateway::rsa;

/// The scheme named in the Authorization header and in
/// `Wechatpay-Signature-Type`.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// An answer older (or newer) than this against the till's clock is
/// refused: WeChat documents the five minutes as a replay guard.
pub const MAX_SKEW_SECS: i64 = 5 * 60;

/// What a request's signature covers: method, the URL's path and query,
/// timestamp, nonce and body, each followed by `\n` (an empty body for GET).
pub fn request_message(method: &str, path_and_query: &str, timestamp: i64, nonce: &str, body: &str) -> String {
    format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body}\n")
}

/// The merchant's signing identity.
pub struct Merchant {
    pub mchid: String,
    /// The serial number of the merchant's API certificate.
    pub serial_no: String,
    pub key: RsaKeyPair,
}

/// The Authorization header's value for one request.
pub fn authorization(
    m: &Merchant,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &str,
) -> Result<String, String> {
    let message = request_message(method, path_and_query, timestamp, nonce, body);
    let signature = rsa::sign(&m.key, &message)?;
    Ok(format!(
        "{SCHEME} mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
        m.mchid, m.serial_no
    ))
}

/// What an answer's signature covers.
pub fn answer_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(nonce.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    out.push(b'\n');
    out
}

/// The keys answers may be signed with, by the id `Wechatpay-Serial` gives.
pub struct VerifyKeys {
    /// `(id or serial, PKCS#1 public key)`.
    keys: Vec<(String, Vec<u8>)>,
}

impl VerifyKeys {
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> VerifyKeys {
        VerifyKeys { keys }
    }

    fn get(&self, serial: &str) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(serial))
            .map(|(_, k)| k.as_slice())
    }
}

/// The signature headers of an answer.
pub struct AnswerHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub serial: Option<&'a str>,
}

/// Why an answer is not verified: it is then an unknown answer, never a
/// paid or a failed one (payment-rules.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unverified {
    MissingHeader(&'static str),
    /// `Wechatpay-Serial` names a key this till was not given.
    UnknownKey(String),
    /// `Wechatpay-Timestamp` is more than five minutes from the till's clock.
    Stale { skew_secs: i64 },
    BadSignature,
}

impl std::fmt::Display for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unverified::MissingHeader(h) => write!(f, "the answer has no {h} header"),
            Unverified::UnknownKey(s) => write!(
                f,
                "the answer is signed with key {s}, which this till was not given \
                 (the WeChat Pay public key id, or a platform certificate serial)"
            ),
            Unverified::Stale { skew_secs } => write!(
                f,
                "the answer's timestamp is {skew_secs} s from the till's clock (more than 5 minutes): \
                 check the till's clock"
            ),
            Unverified::BadSignature => write!(f, "the answer's signature does not verify"),
        }
    }
}

/// Verifies an answer's `body` against its headers, at `now` (Unix
/// seconds on the till's clock).
pub fn verify_answer(
    keys: &VerifyKeys,
    h: &AnswerHeaders<'_>,
    body: &[u8],
    now: i64,
) -> Result<(), Unverified> {
    let timestamp = h.timestamp.ok_or(Unverified::MissingHeader("Wechatpay-Timestamp"))?;
    let nonce = h.nonce.ok_or(Unverified::MissingHeader("Wechatpay-Nonce"))?;
    let signature = h.signature.ok_or(Unverified::MissingHeader("Wechatpay-Signature"))?;
    let serial = h.serial.ok_or(Unverified::MissingHeader("Wechatpay-Serial"))?;
    let key = keys
        .get(serial)
        .ok_or_else(|| Unverified::UnknownKey(serial.to_string()))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Unverified::MissingHeader("Wechatpay-Timestamp"))?;
    let skew = now.saturating_sub(ts);
    if skew.abs() > MAX_SKEW_SECS {
        return Err(Unverified::Stale { skew_secs: skew });
    }
    // WeChat sends probe answers whose signature begins "WECHATPAY/SIGNTEST/"
    // to check that clients verify: they fail here like any bad signature.
    if rsa::verify(key, &answer_message(timestamp, nonce, body), signature) {
        Ok(())
    } else {
        Err(Unverified::BadSignature)
    }
}

#[cfg(test)]
mod tests;
