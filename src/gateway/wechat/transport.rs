//! The WeChat client's dealings with the network and with text it did not
//! write: which address the till shows WeChat, what a transport failure
//! proves (payment-rules.md §4), cutting fields to WeChat's byte limits, and
//! masking a payment code a gateway echoed back.

use super::classify::Reply;
use crate::domain::AuthCode;
use crate::gateway::{GatewayNote, PayAnswer};

/// payment-rules.md §4: only a failure to connect (DNS, refused, connect timeout, TLS
/// handshake) proves nothing was sent.
pub(super) fn transport_error(path: &str, e: &reqwest::Error) -> Reply {
    let text = error_chain(e);
    if e.is_connect() {
        tracing::warn!(path, error = %text, "could not reach wechat; nothing was sent");
        Reply::NotSent(GatewayNote::new("NOT_SENT", text))
    } else {
        let code = if e.is_timeout() {
            "TIMEOUT"
        } else {
            "NO_ANSWER"
        };
        tracing::warn!(path, error = %text, "no answer from wechat after the request left");
        Reply::Lost(GatewayNote::new(code, text))
    }
}

pub use crate::gateway::text::cut;
use crate::gateway::text::{error_chain, scrub_pay};

/// A pay answer as it leaves a WeChat client (v2 or v3): any echo of the
/// code masked, and an error the merchant must fix logged as one.
pub(super) fn finish_pay(answer: PayAnswer, code: &AuthCode, out_trade_no: &str) -> PayAnswer {
    let answer = scrub_pay(answer, code);
    if let PayAnswer::Failed {
        note,
        config_error: true,
    } = &answer
    {
        tracing::error!(
            out_trade_no,
            code = %note.code,
            message = %note.message,
            "wechat refused the request: the merchant setup needs fixing"
        );
    }
    answer
}
