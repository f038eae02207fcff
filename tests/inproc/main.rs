//! The engine and its interfaces in this process: the POS socket, the
//! client commands against it, the scanner on a real pseudo-terminal, and
//! the model test of concurrent requests. One test binary, so the crate is linked once.

#[path = "../common/mod.rs"]
mod common;

mod cli_client;
mod follow;
mod linearizable;
mod pos_socket;
mod scanner_dispatch;
mod scanner_hid;
mod scanner_pty;
mod shift;
mod web;
