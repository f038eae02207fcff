//! WeChat Pay API v2 (issue 3).
