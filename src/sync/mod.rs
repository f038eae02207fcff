//! Syncing the journal to the merchant's HQ: an outbox of the journal's
//! own events, pushed in batches, acknowledged by a high-water mark that
//! the till records. It runs beside the sales and never holds one up: a
//! till whose HQ is down sells as before and catches up later.

mod push;
pub mod wire;

pub use push::{run, SyncStatus};
