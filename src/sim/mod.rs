//! The gateway simulator: WeChat Pay v2 and Alipay dialects on loopback,
//! with a ledger of orders and money. Used by `tillpay demo`, training mode
//! and the tests. It follows the gateways' documented behaviour, not
//! tillpay's client.

pub mod alipay;
pub mod behaviour;
pub mod http;
pub mod ledger;
pub mod pty;
pub mod wechat;
