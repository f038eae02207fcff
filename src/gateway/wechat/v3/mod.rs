//! WeChat Pay API v3, a per-merchant choice beside v2 (`[wechat] api =
//! "v3"`): JSON over HTTPS, requests signed with the merchant's RSA key,
//! answers verified with the WeChat Pay public key or platform
//! certificates. The same engine and payment rules as v2.
//!
//! - [`sign`]: the Authorization header and answer verification;
//! - [`request`]: the calls, as method, path and body;
//! - [`classify`]: pay, query and reverse answers; [`refund`]: refund,
//!   refund query and trade bill answers;
//! - [`client`]: [`WechatV3Gateway`]; [`config`]: the table's v3 keys.

pub mod classify;
pub mod client;
pub mod config;
pub mod doctor;
pub mod refund;
pub mod request;
pub mod sign;

pub use client::WechatV3Gateway;
pub use config::WechatV3Config;
