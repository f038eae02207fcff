//! tillpay HQ: many tills of one merchant on one PostgreSQL.
//!
//! - `ingest`: the tills' journal batches into per-till sales, attempts,
//!   refunds and their history (the sync protocol is the till's own
//!   `tillpay::sync::wire`).
//! - `fleet`: what operators read across tills; `commands`: what they
//!   ask of a till (a resolve, a refund), delivered in its sync answers.
//! - `relay`: relay mode, where a till's gateway calls go through HQ,
//!   which holds the merchant's keys.
//! - `console`: the operators' web pages, with accounts, roles, sessions
//!   and the audit log.
//! - `http`: the one HTTP service all of them speak to; `db` its storage.

pub mod commands;
pub mod config;
pub mod console;
pub mod db;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod reconcile;
pub mod relay;
pub mod status;
pub mod tills;
