//! WeChat Pay API v2: signed XML over HTTPS, with the client
//! certificate for `/secapi/` calls.
//!
//! - [`sign`]: MD5 / HMAC-SHA256 signatures and their verification;
//! - [`xml`]: the flat request/response documents, parsed with caps;
//! - [`classify`]: WeChat's codes mapped to the trait's answers (payment-rules.md);
//! - [`client`]: [`WechatGateway`], the `Gateway` implementation;
//! - [`config`]: the `[wechat]` table; [`bill`]: the `downloadbill` text;
//!   `cert`: the client certificate's expiry, for `tillpay doctor`;
//! - [`failover`]: the backup domain, taken when the primary cannot be
//!   connected to;
//! - [`channel`]: all of it registered as one channel;
//! - [`v3`]: API v3 (JSON, RSA signatures), chosen per merchant with
//!   `api = "v3"`.

pub mod bill;
mod cert;
pub mod channel;
pub mod classify;
pub mod client;
pub mod config;
pub mod failover;
pub mod sign;
mod transport;
pub mod v3;
/// WeChat's v2 documents are the shared flat XML.
pub use crate::gateway::flat_xml as xml;

/// A platform certificate's public key (for tests and the simulator's
/// migration case).
pub use cert::public_key as cert_public_key;
pub use channel::CHANNEL;
pub use client::WechatGateway;
pub use config::{ClientIdentity, WechatConfig};
pub use sign::SignType as WechatSignType;
