//! tillpay: turns a scanned WeChat Pay or Alipay payment code into one safe,
//! final answer for the POS.
//!
//! Data flows scanner → engine (+ journal) → gateways; the POS socket sits
//! beside the engine; reconciliation and the simulator stand apart.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod fuzz;
pub mod gateway;
pub mod journal;
pub mod logging;
pub mod machine;
pub mod pos;
pub mod reconcile;
pub mod scanner;
pub mod scanner_link;
pub mod shift;
pub mod sim;
pub mod sync;
pub mod systemd;
