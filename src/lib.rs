//! tillpay: turns a scanned WeChat Pay or Alipay payment code into one safe,
//! final answer for the POS.
//!
//! Data flows scanner → engine (+ journal) → gateways; the POS socket sits
//! beside the engine; reconciliation and the simulator stand apart.

pub mod config;
pub mod domain;
pub mod gateway;
pub mod scanner;
pub mod sim;
