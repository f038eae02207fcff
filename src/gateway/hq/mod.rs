//! The HQ relay: a channel whose gateway is the merchant's HQ. The till
//! keeps no gateway key; HQ journals each call, signs it with the
//! merchant's keys, verifies the gateway's answer and relays it classified.
//! To the engine it is one more channel: an answer lost between till and HQ
//! is an unknown answer like any other.
//!
//! - [`wire`]: the calls and HQ's signed answers (shared with `tillpay-hq`);
//! - [`client`]: [`RelayGateway`]; [`channel`]: the `[hq] relay = true`
//!   table and the relayed bill.

pub mod channel;
pub mod client;
pub mod wire;

pub use channel::{RelayConfig, CHANNEL};
pub use client::RelayGateway;
