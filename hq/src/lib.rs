//! tillpay HQ: many tills of one merchant on one PostgreSQL.
//!
//! - `ingest`: the tills' journal batches into per-till sales, attempts,
//!   refunds and their history (the sync protocol is the till's own
//!   `tillpay::sync::wire`).
//! - `fleet`: what operators read across tills; `commands`: what they
//!   ask of a till (a resolve, a refund), delivered in its sync answers.
//! - `http`: the one HTTP service both speak to; `db` its storage.

pub mod commands;
pub mod config;
pub mod db;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod reconcile;
pub mod status;
pub mod tills;
