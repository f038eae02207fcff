//! Text every gateway client needs: a transport error with its causes, a
//! field cut to a byte limit, and a payment code a gateway echoed back
//! masked before it can reach a note, a log or the journal.

use crate::domain::AuthCode;
use crate::gateway::{GatewayNote, PayAnswer};

/// An error with its chain of causes, each once.
pub fn error_chain(e: &dyn std::error::Error) -> String {
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

/// Cuts `s` to at most `max` bytes on a character boundary (gateways
/// count their field limits in bytes of UTF-8).
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
/// echoed it back (payment-rules.md §19).
pub fn scrub(note: &mut GatewayNote, code: &AuthCode) {
    let full = code.expose();
    if !full.is_empty() {
        note.message = note.message.replace(full, &code.masked());
        note.code = note.code.replace(full, &code.masked());
    }
}

/// [`scrub`] on whatever note a pay answer carries.
pub fn scrub_pay(mut answer: PayAnswer, code: &AuthCode) -> PayAnswer {
    match &mut answer {
        PayAnswer::Failed { note, .. }
        | PayAnswer::Unknown { note, .. }
        | PayAnswer::NotSent(note)
        | PayAnswer::OrderNumberUsed(note) => scrub(note, code),
        PayAnswer::Paid(_) => {}
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
    fn an_echoed_code_is_masked_in_every_answer() {
        let code = AuthCode::new("134567890123456789", crate::domain::Provider::Wechat);
        let answer = PayAnswer::Unknown {
            note: GatewayNote::new("X", "bad code 134567890123456789!"),
            user_paying: false,
        };
        match scrub_pay(answer, &code) {
            PayAnswer::Unknown { note, .. } => {
                assert_eq!(note.message, "bad code 1345**********6789!")
            }
            other => panic!("{other:?}"),
        }
    }
}
