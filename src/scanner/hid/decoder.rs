//! Key events → what the gun typed: characters and frame ends (Enter or
//! Tab), with Shift held on either side. A gun types far faster than a
//! person: a frame with a gap between two key presses longer than
//! `max_key_gap` is not a scan (a keyboard grabbed by mistake, or someone
//! typing) and is reported as such, never charged.

use std::time::Duration;

use super::event::{InputEvent, EV_KEY};
use super::keymap::{self, Layout};

/// What one event meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// Enter or Tab: the frame is complete. `slow` when its keys came
    /// slower than a scan gun types.
    End {
        slow: bool,
    },
    /// A key that types nothing a scan holds (F1, an arrow…): the frame is
    /// garbage.
    Other(u16),
}

#[derive(Debug)]
pub struct KeyDecoder {
    layout: Layout,
    max_gap_us: i64,
    left_shift: bool,
    right_shift: bool,
    /// The time of the frame's last key press.
    last_press: Option<i64>,
    slow: bool,
}

impl KeyDecoder {
    pub fn new(layout: Layout, max_key_gap: Duration) -> KeyDecoder {
        KeyDecoder {
            layout,
            max_gap_us: i64::try_from(max_key_gap.as_micros()).unwrap_or(i64::MAX),
            left_shift: false,
            right_shift: false,
            last_press: None,
            slow: false,
        }
    }

    /// One event; `None` for those that type nothing (releases, repeats,
    /// Shift, sync reports).
    pub fn push(&mut self, ev: InputEvent) -> Option<Key> {
        if ev.kind != EV_KEY {
            return None;
        }
        let down = ev.value == 1;
        match ev.code {
            keymap::KEY_LEFTSHIFT => {
                self.left_shift = ev.value != 0;
                return None;
            }
            keymap::KEY_RIGHTSHIFT => {
                self.right_shift = ev.value != 0;
                return None;
            }
            // A gun never holds a key: autorepeat (2) would only double a
            // character; releases type nothing.
            _ if !down => return None,
            keymap::KEY_CAPSLOCK | keymap::KEY_NUMLOCK => return None,
            _ => {}
        }
        if let Some(last) = self.last_press {
            if ev.time_us.saturating_sub(last) > self.max_gap_us {
                self.slow = true;
            }
        }
        self.last_press = Some(ev.time_us);
        if matches!(
            ev.code,
            keymap::KEY_ENTER | keymap::KEY_KPENTER | keymap::KEY_TAB
        ) {
            return Some(Key::End {
                slow: self.end_frame(),
            });
        }
        let shift = self.left_shift || self.right_shift;
        Some(match keymap::char_of(self.layout, ev.code, shift) {
            Some(c) => Key::Char(c),
            None => Key::Other(ev.code),
        })
    }

    /// The frame ended (by Enter, or by a gap): whether it was slow; the
    /// next key starts a new one.
    pub fn end_frame(&mut self) -> bool {
        self.last_press = None;
        std::mem::take(&mut self.slow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(d: &mut KeyDecoder, events: &[InputEvent]) -> Vec<Key> {
        events.iter().filter_map(|e| d.push(*e)).collect()
    }

    fn press(code: u16, t: i64) -> [InputEvent; 2] {
        [
            InputEvent::key(code, 1, t),
            InputEvent::key(code, 0, t + 500),
        ]
    }

    #[test]
    fn shift_on_either_side_repeat_and_release_are_handled() {
        let mut d = KeyDecoder::new(Layout::Us, Duration::from_millis(50));
        let mut evs = vec![InputEvent::key(keymap::KEY_RIGHTSHIFT, 1, 0)];
        evs.extend(press(27, 1000)); // ] → }
        evs.push(InputEvent::key(keymap::KEY_RIGHTSHIFT, 0, 2000));
        evs.extend(press(27, 3000)); // ]
        evs.push(InputEvent::key(2, 2, 3500)); // a repeat of 1: nothing
        evs.extend(press(keymap::KEY_ENTER, 4000));
        assert_eq!(
            typed(&mut d, &evs),
            [Key::Char('}'), Key::Char(']'), Key::End { slow: false }]
        );
    }

    #[test]
    fn a_slow_typist_is_told_apart_from_a_gun() {
        let mut d = KeyDecoder::new(Layout::Us, Duration::from_millis(50));
        let fast: Vec<InputEvent> = (0..18)
            .flat_map(|i| press(2 + (i % 10) as u16, i * 3_000))
            .collect();
        let mut keys = typed(&mut d, &fast);
        keys.extend(typed(&mut d, &press(keymap::KEY_ENTER, 60_000)));
        assert_eq!(keys.last(), Some(&Key::End { slow: false }));
        let slow: Vec<InputEvent> = (0..18)
            .flat_map(|i| press(2, 1_000_000 + i * 180_000))
            .collect();
        let mut keys = typed(&mut d, &slow);
        keys.extend(typed(&mut d, &press(keymap::KEY_TAB, 5_000_000)));
        assert_eq!(keys.last(), Some(&Key::End { slow: true }));
        assert!(!d.end_frame(), "the next frame starts afresh");
        assert_eq!(
            typed(&mut d, &press(59, 0)),
            [Key::Other(59)],
            "F1 types nothing"
        );
    }
}
