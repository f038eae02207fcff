//! `struct input_event` as the kernel writes it to an evdev node: a
//! `timeval` (two C longs), then `type` and `code` (u16) and `value`
//! (i32), in native byte order: 24 bytes on a 64-bit till.

use std::mem::size_of;

/// One record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    /// The kernel's timestamp, in microseconds.
    pub time_us: i64,
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

/// `EV_KEY`: a key went down (1), up (0) or repeats (2).
pub const EV_KEY: u16 = 1;

const LONG: usize = size_of::<libc::c_long>();
/// The record's size on this machine.
pub const SIZE: usize = 2 * LONG + 8;

fn long_at(b: &[u8], at: usize) -> i64 {
    let mut v = [0u8; 8];
    if LONG == 8 {
        v.copy_from_slice(&b[at..at + 8]);
        i64::from_ne_bytes(v)
    } else {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[at..at + 4]);
        i64::from(i32::from_ne_bytes(w))
    }
}

impl InputEvent {
    pub fn key(code: u16, value: i32, time_us: i64) -> InputEvent {
        InputEvent {
            time_us,
            kind: EV_KEY,
            code,
            value,
        }
    }

    fn from_bytes(b: &[u8]) -> InputEvent {
        let sec = long_at(b, 0);
        let usec = long_at(b, LONG);
        let at = 2 * LONG;
        InputEvent {
            time_us: sec.saturating_mul(1_000_000).saturating_add(usec),
            kind: u16::from_ne_bytes([b[at], b[at + 1]]),
            code: u16::from_ne_bytes([b[at + 2], b[at + 3]]),
            value: i32::from_ne_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]),
        }
    }

    /// The record as the kernel would write it (for tests and tools that
    /// stand in for a device).
    pub fn to_bytes(self) -> Vec<u8> {
        let (sec, usec) = (self.time_us / 1_000_000, self.time_us % 1_000_000);
        let mut out = Vec::with_capacity(SIZE);
        if LONG == 8 {
            out.extend_from_slice(&sec.to_ne_bytes());
            out.extend_from_slice(&usec.to_ne_bytes());
        } else {
            out.extend_from_slice(&(sec as i32).to_ne_bytes());
            out.extend_from_slice(&(usec as i32).to_ne_bytes());
        }
        out.extend_from_slice(&self.kind.to_ne_bytes());
        out.extend_from_slice(&self.code.to_ne_bytes());
        out.extend_from_slice(&self.value.to_ne_bytes());
        out
    }
}

/// Cuts a byte stream into records; a read may end inside one.
#[derive(Debug, Default)]
pub struct EventParser {
    partial: Vec<u8>,
}

impl EventParser {
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<InputEvent>) {
        self.partial.extend_from_slice(bytes);
        let whole = self.partial.len() / SIZE * SIZE;
        out.extend(
            self.partial[..whole]
                .chunks_exact(SIZE)
                .map(InputEvent::from_bytes),
        );
        self.partial.drain(..whole);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_cut_anywhere_come_back_whole() {
        let evs = [
            InputEvent::key(2, 1, 1_700_000_000_123_456),
            InputEvent::key(2, 0, 1_700_000_000_124_000),
            InputEvent {
                time_us: 5,
                kind: 0,
                code: 0,
                value: 0,
            },
        ];
        let bytes: Vec<u8> = evs.iter().flat_map(|e| e.to_bytes()).collect();
        assert_eq!(bytes.len(), 3 * SIZE);
        for cut in [1, 7, SIZE, SIZE + 3, bytes.len()] {
            let mut p = EventParser::default();
            let mut out = Vec::new();
            p.push(&bytes[..cut], &mut out);
            p.push(&bytes[cut..], &mut out);
            assert_eq!(out, evs, "cut at {cut}");
        }
    }
}
