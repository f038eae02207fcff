//! Drops a payment code read again within a short window: a scan gun held
//! over a phone reads the same code several times, and payment-rules.md §19 says the
//! same code scanned twice charges at most once. Pure: time is passed in.
//!
//! Only a keyed hash of each recent code is kept (HMAC-SHA256 under a key
//! made at start), never the code: an 18-digit code is too short for a plain
//! hash to hide it from someone who can read the process's memory.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ring::{digest, hmac, rand};

use crate::domain::AuthCode;

pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3);

/// The most codes remembered at once; past it the oldest is forgotten.
pub const CAPACITY: usize = 32;

type Tag = [u8; 32];

pub struct DoubleReadFilter {
    window: Duration,
    key: Option<hmac::Key>,
    /// (tag, time of the latest read), oldest first.
    recent: VecDeque<(Tag, Instant)>,
}

impl std::fmt::Debug for DoubleReadFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoubleReadFilter")
            .field("window", &self.window)
            .field("remembered", &self.recent.len())
            .finish()
    }
}

impl Default for DoubleReadFilter {
    fn default() -> Self {
        DoubleReadFilter::new(DEFAULT_WINDOW)
    }
}

impl DoubleReadFilter {
    pub fn new(window: Duration) -> DoubleReadFilter {
        // Without a key (no randomness available) a plain SHA-256 is used.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rand::SystemRandom::new()).ok();
        DoubleReadFilter {
            window,
            key,
            recent: VecDeque::with_capacity(CAPACITY),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// `true` for a code not read within the window before `now`; `false`
    /// for a double read. Either way the read is remembered, so a code held
    /// under the gun keeps being dropped while the re-reads go on.
    pub fn admit(&mut self, code: &AuthCode, now: Instant) -> bool {
        let repeat = self.is_repeat(code, now);
        self.record(code, now);
        !repeat
    }

    /// Whether `code` was recorded less than the window before `now`.
    pub fn is_repeat(&self, code: &AuthCode, now: Instant) -> bool {
        let tag = self.tag(code);
        self.recent
            .iter()
            .any(|(t, at)| *t == tag && now.saturating_duration_since(*at) < self.window)
    }

    /// Remembers a read of `code` at `now`.
    pub fn record(&mut self, code: &AuthCode, now: Instant) {
        let tag = self.tag(code);
        let window = self.window;
        self.recent
            .retain(|(t, at)| *t != tag && now.saturating_duration_since(*at) < window);
        if self.recent.len() >= CAPACITY {
            self.recent.pop_front();
        }
        self.recent.push_back((tag, now));
    }

    /// How many codes are remembered now (for tests and status).
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    fn tag(&self, code: &AuthCode) -> Tag {
        let mut out = [0u8; 32];
        match &self.key {
            Some(key) => out.copy_from_slice(hmac::sign(key, code.expose().as_bytes()).as_ref()),
            None => out.copy_from_slice(
                digest::digest(&digest::SHA256, code.expose().as_bytes()).as_ref(),
            ),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> AuthCode {
        crate::gateway::recognise(s).expect("test code")
    }

    #[test]
    fn same_code_within_window_is_a_double_read() {
        let t0 = Instant::now();
        let mut f = DoubleReadFilter::new(Duration::from_secs(3));
        let c = code("134567890123456789");
        assert!(f.admit(&c, t0));
        assert!(!f.admit(&c, t0 + Duration::from_millis(200)));
        assert!(!f.admit(&c, t0 + Duration::from_millis(2_900)));
    }

    #[test]
    fn same_code_after_quiet_window_is_admitted() {
        let t0 = Instant::now();
        let mut f = DoubleReadFilter::new(Duration::from_secs(3));
        let c = code("134567890123456789");
        assert!(f.admit(&c, t0));
        assert!(f.admit(&c, t0 + Duration::from_secs(3)));
    }

    #[test]
    fn rereads_keep_the_window_sliding() {
        let t0 = Instant::now();
        let mut f = DoubleReadFilter::new(Duration::from_secs(3));
        let c = code("134567890123456789");
        assert!(f.admit(&c, t0));
        for s in 1..=5 {
            assert!(!f.admit(&c, t0 + Duration::from_secs(2 * s)), "reread {s}");
        }
    }

    #[test]
    fn other_codes_are_not_double_reads() {
        let t0 = Instant::now();
        let mut f = DoubleReadFilter::default();
        assert!(f.admit(&code("134567890123456789"), t0));
        assert!(f.admit(&code("284567890123456789"), t0));
        assert!(f.admit(&code("134567890123456788"), t0));
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn memory_is_bounded_and_expired_codes_are_forgotten() {
        let t0 = Instant::now();
        let mut f = DoubleReadFilter::new(Duration::from_secs(3));
        for i in 0..1_000u64 {
            let c = code(&format!("13{:016}", i));
            assert!(f.admit(&c, t0));
            assert!(f.len() <= CAPACITY);
        }
        f.record(&code("134567890123456789"), t0 + Duration::from_secs(10));
        assert_eq!(f.len(), 1, "entries older than the window are dropped");
    }

    #[test]
    fn debug_shows_no_code_or_hash() {
        let mut f = DoubleReadFilter::default();
        f.record(&code("134567890123456789"), Instant::now());
        let dbg = format!("{f:?}");
        assert!(!dbg.contains("1345"), "{dbg}");
    }
}
