//! An acquirer's route: the `unified.trade.*` protocol (SwiftPass's, which
//! many banks and UnionPay's barcode front-end expose), one route for
//! WeChat, Alipay and UnionPay payment codes, for merchants who hold no
//! WeChat or Alipay key of their own.
//!
//! Being built: so far its signatures ([`sign`]) and what its answers mean
//! ([`classify`]); the client, its config table, routing codes by provider
//! to it, and the simulator's dialect follow.

pub mod classify;
pub mod sign;
