//! WeChat Pay API v3 (issue 20, in progress): JSON over HTTPS, signed with
//! RSA. So far its signatures ([`sign`]); the client, its classification
//! and the simulator's v3 dialect follow.

pub mod sign;
