//! The POS side: the JSON-RPC socket server and the client the `tillpay`
//! commands use.

pub mod client;
pub mod rpc;
pub mod server;
