//! The serial scan gun: bytes → frames → payment codes (payment-rules.md §19).
//!
//! [`reader::spawn`] runs the device: it opens it, frames and classifies what
//! it sends, drops double reads, reconnects after an unplug, and reports
//! [`ScannerEvent`]s. The engine decides what a code is for (the waiting
//! charge, or "no charge waiting"). The pieces are pure and usable alone:
//! [`Framer`], [`classify`], [`DoubleReadFilter`].

pub mod double_read;
pub mod framer;
pub mod hid;
pub mod reader;

pub use double_read::DoubleReadFilter;
pub use framer::{Frame, FrameText, Framer, MAX_FRAME};
pub use reader::{spawn, spawn_with, ReaderOptions, ScannerHandle};

use crate::domain::{mask_code, AuthCode};

/// What the reader reports. Reasons never hold a full payment code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerEvent {
    /// The device was opened (at start or after a replug).
    Connected,
    /// The device went away; the reader keeps trying to reopen it.
    Disconnected { reason: String },
    /// A payment code, not a double read.
    Code(AuthCode),
    /// A scan that is not a payment code, a bad frame, or a double read.
    Ignored { reason: String },
}

/// Reason prefixes of [`ScannerEvent::Ignored`], for matching.
pub const NOT_A_PAYMENT_CODE: &str = "not a payment code";
pub const DOUBLE_READ: &str = "double read";

/// A clean frame → a payment code, or the reason it is not one (with the
/// frame masked, e.g. `"not a payment code: 6901*****7892 (13 characters)"`).
pub fn classify(text: &FrameText) -> Result<AuthCode, String> {
    let s = text.as_str();
    crate::gateway::recognise(s).ok_or_else(|| {
        format!(
            "{NOT_A_PAYMENT_CODE}: {} ({} characters)",
            mask_code(s),
            s.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Provider;
    use std::time::{Duration, Instant};

    fn text(s: &str) -> FrameText {
        let mut f = Framer::new(Duration::from_millis(50));
        let mut out = Vec::new();
        f.push(format!("{s}\r").as_bytes(), Instant::now(), &mut out);
        match out.pop() {
            Some(Frame::Text(t)) => t,
            other => panic!("no text frame: {other:?}"),
        }
    }

    #[test]
    fn payment_codes_are_classified_by_provider() {
        let c = classify(&text("134567890123456789")).expect("wechat");
        assert_eq!(c.provider(), Provider::Wechat);
        let c = classify(&text("]C02845678901234567")).expect("alipay");
        assert_eq!(c.provider(), Provider::Alipay);
        assert_eq!(c.expose(), "2845678901234567");
    }

    #[test]
    fn product_barcodes_and_urls_are_not_payment_codes_and_are_masked() {
        let r = classify(&text("6901234567892")).expect_err("EAN-13");
        assert_eq!(r, "not a payment code: 6901*****7892 (13 characters)");
        let r = classify(&text("https://qr.alipay.com/fkx12345abcd")).expect_err("URL");
        assert!(r.starts_with(NOT_A_PAYMENT_CODE), "{r}");
        assert!(!r.contains("alipay.com"), "{r}");
        // A code with one digit too many is not a code, and still masked.
        let r = classify(&text("1345678901234567890")).expect_err("19 digits");
        assert!(!r.contains("1345678901234567890"), "{r}");
    }
}
