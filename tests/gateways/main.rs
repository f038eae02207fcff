//! The gateway clients: against the simulator over real HTTP with real
//! signatures, through a TLS double that checks client certificates, under
//! transport faults, and side by side with third-party clients (wechatpy,
//! wechatpayv3, python-alipay-sdk). One test binary, so the crate is linked
//! once.

mod conformance_env;
mod wechat_support;

mod acquirer_sim;
mod alipay_conformance;
mod alipay_sim;
mod gateway_tls;
mod hq_relay;
mod wechat_client;
mod wechat_conformance;
mod wechat_failover;
mod wechat_faults;
mod wechat_sim;
mod wechat_v3;
mod wechat_v3_conformance;
