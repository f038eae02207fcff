//! WeChat Pay API v3, being built beside v2: JSON over HTTPS, signed with
//! RSA. So far its signatures ([`sign`]), its requests ([`request`]) and
//! what its answers mean ([`classify`]); the client and the simulator's v3
//! dialect follow.

pub mod classify;
pub mod request;
pub mod sign;
