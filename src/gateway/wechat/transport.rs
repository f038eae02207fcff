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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The full code must not reach a log, note or journal even if a gateway
/// echoed it back in a message.
pub(super) fn scrub(note: &mut GatewayNote, code: &AuthCode) {
    let full = code.expose();
    if !full.is_empty() {
        note.message = note.message.replace(full, &code.masked());
        note.code = note.code.replace(full, &code.masked());
    }
}

/// A pay answer as it leaves a WeChat client (v2 or v3): any echo of the
/// code masked, and an error the merchant must fix logged as one.
pub(super) fn finish_pay(mut answer: PayAnswer, code: &AuthCode, out_trade_no: &str) -> PayAnswer {
    match &mut answer {
        PayAnswer::Failed { note, .. }
        | PayAnswer::Unknown { note, .. }
        | PayAnswer::NotSent(note)
        | PayAnswer::OrderNumberUsed(note) => scrub(note, code),
        PayAnswer::Paid(_) => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("abc", 128), "abc");
        let long = "咖".repeat(100); // 300 bytes
        let c = cut(&long, 128);
        assert_eq!(c.len(), 126);
        assert_eq!(c.chars().count(), 42);
        assert_eq!(cut(&"a".repeat(200), 128).len(), 128);
    }

    #[test]
    fn scrub_masks_an_echoed_code() {
        let code = AuthCode::new("134567890123456789", crate::domain::Provider::Wechat);
        let mut note = GatewayNote::new("X", "bad code 134567890123456789!");
        scrub(&mut note, &code);
        assert_eq!(note.message, "bad code 1345**********6789!");
    }
}
