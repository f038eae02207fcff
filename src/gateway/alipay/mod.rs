//! Alipay OpenAPI (issue 4).
