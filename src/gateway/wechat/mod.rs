//! WeChat Pay API v2: signed XML over HTTPS, with the client
//! certificate for `/secapi/` calls.
//!
//! - [`sign`]: MD5 / HMAC-SHA256 signatures and their verification;
//! - [`xml`]: the flat request/response documents, parsed with caps;
//! - [`classify`]: WeChat's codes mapped to the trait's answers (payment-rules.md);
//! - [`client`]: [`WechatGateway`], the `Gateway` implementation.

pub mod classify;
pub mod client;
pub mod sign;
pub mod xml;

pub use client::WechatGateway;
