//! Splits the scanner's byte stream into frames (payment-rules.md §19). Pure: no I/O,
//! no clock reads; the caller passes the time of every read and fires the
//! silence-gap timer from [`Framer::deadline`].

use std::fmt;
use std::time::{Duration, Instant};

use crate::domain::mask_code;

/// The longest frame kept, in bytes (terminator excluded, before stripping).
pub const MAX_FRAME: usize = 256;

/// The text of a clean frame: printable ASCII, stripped of surrounding
/// whitespace and of a leading AIM identifier. It may be a payment code, so
/// `Debug` shows it masked.
#[derive(Clone, PartialEq, Eq)]
pub struct FrameText(String);

impl FrameText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FrameText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameText({})", mask_code(&self.0))
    }
}

/// One frame out of the framer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A clean, non-empty frame.
    Text(FrameText),
    /// A frame thrown away; `reason` never holds the frame's bytes unmasked.
    Dropped { reason: String },
}

/// Accumulates bytes until CR, LF or a silence of `gap` ends a frame.
#[derive(Debug)]
pub struct Framer {
    gap: Duration,
    /// Bytes of the pending frame; never longer than [`MAX_FRAME`].
    buf: Vec<u8>,
    /// The pending frame went over [`MAX_FRAME`]: its bytes are being
    /// discarded until the frame ends.
    overlong: bool,
    /// Time of the last byte of the pending frame; `None` when nothing is pending.
    last_byte: Option<Instant>,
}

impl Framer {
    pub fn new(gap: Duration) -> Framer {
        Framer {
            gap,
            buf: Vec::with_capacity(MAX_FRAME),
            overlong: false,
            last_byte: None,
        }
    }

    /// When the pending frame ends by silence, if nothing more arrives.
    pub fn deadline(&self) -> Option<Instant> {
        self.last_byte.map(|t| t + self.gap)
    }

    /// Ends the pending frame if the silence gap has passed by `now`.
    pub fn poll_gap(&mut self, now: Instant) -> Option<Frame> {
        match self.deadline() {
            Some(d) if now >= d => self.end_frame(),
            _ => None,
        }
    }

    /// Forgets a partial frame (the device went away mid-scan).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.overlong = false;
        self.last_byte = None;
    }

    /// Feeds the bytes of one read made at `now`; finished frames are
    /// appended to `out`.
    pub fn push(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<Frame>) {
        // A read that comes after the gap has passed starts a new frame even
        // if the timer has not fired yet.
        out.extend(self.poll_gap(now));
        for &b in bytes {
            match b {
                // CR, LF, and CRLF as CR then an empty frame, which is skipped.
                b'\r' | b'\n' => out.extend(self.end_frame()),
                _ => {
                    self.last_byte = Some(now);
                    if self.overlong {
                        continue;
                    }
                    if self.buf.len() == MAX_FRAME {
                        // Discard, rather than keep, the rest of an endless
                        // frame: memory stays bounded whatever the device sends.
                        self.overlong = true;
                        self.buf.clear();
                    } else {
                        self.buf.push(b);
                    }
                }
            }
        }
    }

    fn end_frame(&mut self) -> Option<Frame> {
        let overlong = self.overlong;
        let raw = std::mem::take(&mut self.buf);
        self.reset();
        if overlong {
            return Some(Frame::Dropped {
                reason: format!("frame longer than {MAX_FRAME} bytes"),
            });
        }
        let frame = clean(&raw);
        // Keep the buffer's allocation for the next frame.
        self.buf = raw;
        self.buf.clear();
        frame
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0b | 0x0c)
}

/// Strips whitespace and an AIM identifier; `None` for a frame left empty.
fn clean(raw: &[u8]) -> Option<Frame> {
    let mut s = trim(raw);
    // AIM symbology identifier: `]`, a code character, a modifier (ISO/IEC
    // 15424), e.g. `]C0` Code 128, `]Q1` QR. Scanners prepend it when the
    // "AIM ID" option is on.
    if s.first() == Some(&b']') && s.len() >= 3 {
        s = trim(&s[3..]);
    }
    if s.is_empty() {
        return None;
    }
    if let Some(pos) = s.iter().position(|&b| !(0x20..=0x7e).contains(&b)) {
        return Some(Frame::Dropped {
            reason: format!(
                "non-printable byte 0x{:02x} at position {pos} of a {}-byte frame",
                s[pos],
                s.len()
            ),
        });
    }
    // All printable ASCII, so this cannot fail; a failure is reported
    // rather than panicking.
    match std::str::from_utf8(s) {
        Ok(text) => Some(Frame::Text(FrameText(text.to_string()))),
        Err(_) => Some(Frame::Dropped {
            reason: "frame is not ASCII".to_string(),
        }),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests;
