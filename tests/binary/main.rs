//! The real `tillpay` binary: the daemon under
//! systemd's conventions, the demo, doctor, whole tills against the
//! simulator, kill -9, reconciliation and packaging. One test binary, so the
//! crate is linked once.

/// The POS connection (the in-process till of `tests/common` is not needed
/// here: these tests run the real daemon).
#[path = "../common/conn.rs"]
mod common;
mod till;

mod archive;
mod clockjump;
mod crash;
mod customers;
mod daemon_run;
mod demo;
mod dev;
mod diskfull;
mod doctor;
mod e2e;
mod node_client;
mod outage;
mod packaging;
mod powercut;
mod reconcile_cli;
mod soak;
mod web_pos;
