//! An acquirer's route: the `unified.trade.*` protocol (SwiftPass's, which
//! many banks and UnionPay's barcode front-end expose), one channel for
//! WeChat, Alipay and UnionPay payment codes, for merchants who hold no
//! WeChat or Alipay key of their own.
//!
//! - [`sign`]: MD5 and RSA_1_256 signatures;
//! - [`classify`]: what its answers mean (payment-rules.md §21);
//! - [`client`]: [`AcquirerGateway`]; [`config`]: the `[acquirer]` table;
//! - [`bill`]: the merchant bill; [`channel`]: all of it as one channel.

pub mod bill;
pub mod channel;
pub mod classify;
pub mod client;
pub mod config;
pub mod sign;

pub use channel::CHANNEL;
pub use client::AcquirerGateway;
pub use config::AcquirerConfig;
