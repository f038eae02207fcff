//! The POS side: the JSON-RPC socket server, the browser interface
//! (loopback WebSocket and HTTP), and the client the `tillpay` commands use.

pub mod client;
pub mod rpc;
pub mod server;
pub mod session;
pub mod web;
