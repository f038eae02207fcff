//! Alipay OpenAPI: RSA2-signed `gateway.do` calls for the bar-code
//! ("当面付") flow — pay, query, cancel, refund, refund query and the bill.
//!
//! - `keys`: PKCS#1 / PKCS#8 / bare-base64 private keys, SPKI / PKCS#1 public keys.
//! - `sign`: the string to sign, RSA2 sign and verify.
//! - `json_scan`: the raw `*_response` text the signature covers.
//! - `classify`: verified answers → the engine's classified answers.
//! - `client`: [`AlipayGateway`], the [`crate::gateway::Gateway`] impl.
//! - `form`: form encoding.
//! - `config`: the `[alipay]` table; `bill`: the bill zip and its CSV;
//!   `channel`: all of it registered as one channel.

pub mod bill;
pub mod channel;
pub mod classify;
pub mod client;
pub mod config;
pub mod form;
pub mod json_scan;
pub use crate::gateway::rsa as keys;
pub mod sign;

pub use channel::CHANNEL;
pub use client::{verify_answer, AlipayGateway};
pub use config::AlipayConfig;

#[cfg(test)]
mod tests;

/// A key file of `tests/fixtures/alipay`, for the tests of this module
/// and of the simulator. A missing file fails the test that asked for it.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/alipay/").to_string() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
