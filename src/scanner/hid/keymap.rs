//! Linux key codes (`input-event-codes.h`) → characters, for the keyboard
//! layouts scan guns are set to. A gun in keyboard mode types each
//! character as the key that makes it on the layout it was configured for,
//! so the host must read them back with the same one.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// US QWERTY, what guns ship with.
    #[default]
    Us,
    /// German QWERTZ: Y and Z swapped, other shifted digits.
    De,
    /// French AZERTY: digits need Shift on the top row.
    Fr,
}

impl FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Layout, String> {
        match s {
            "us" => Ok(Layout::Us),
            "de" => Ok(Layout::De),
            "fr" => Ok(Layout::Fr),
            other => Err(format!("{other:?} must be \"us\", \"de\" or \"fr\"")),
        }
    }
}

pub const KEY_TAB: u16 = 15;
pub const KEY_ENTER: u16 = 28;
pub const KEY_LEFTSHIFT: u16 = 42;
pub const KEY_RIGHTSHIFT: u16 = 54;
pub const KEY_KPENTER: u16 = 96;
pub const KEY_CAPSLOCK: u16 = 58;
pub const KEY_NUMLOCK: u16 = 69;

/// The top row: KEY_1 (2) … KEY_0 (11), KEY_MINUS (12), KEY_EQUAL (13).
const TOP: std::ops::RangeInclusive<u16> = 2..=13;

/// Letters by key code, US positions.
fn letter(code: u16) -> Option<char> {
    let row = |first: u16, s: &str| {
        (code >= first)
            .then(|| s.chars().nth(usize::from(code - first)))
            .flatten()
    };
    match code {
        16..=25 => row(16, "qwertyuiop"),
        30..=38 => row(30, "asdfghjkl"),
        44..=50 => row(44, "zxcvbnm"),
        _ => None,
    }
}

/// The keypad, the same on every layout (NumLock on, as guns assume).
fn keypad(code: u16) -> Option<char> {
    Some(match code {
        71 => '7',
        72 => '8',
        73 => '9',
        74 => '-',
        75 => '4',
        76 => '5',
        77 => '6',
        78 => '+',
        79 => '1',
        80 => '2',
        81 => '3',
        82 => '0',
        83 => '.',
        98 => '/',
        55 => '*',
        _ => return None,
    })
}

/// The character of `code` with or without Shift on `layout`; `None` for a
/// key that types nothing a scan can hold.
pub fn char_of(layout: Layout, code: u16, shift: bool) -> Option<char> {
    if let Some(c) = keypad(code) {
        return Some(c);
    }
    if TOP.contains(&code) {
        let i = usize::from(code - 2);
        let row = match (layout, shift) {
            (Layout::Us, false) | (Layout::De, false) | (Layout::Fr, true) => "1234567890-=",
            (Layout::Us, true) => "!@#$%^&*()_+",
            (Layout::De, true) => "!\"§$%&/()=?`",
            (Layout::Fr, false) => "&é\"'(-è_çà)=",
        };
        let c = row.chars().nth(i)?;
        // The two keys right of 0 differ on DE and FR; only US ones are kept.
        return (i < 10 || layout == Layout::Us).then_some(c);
    }
    let base = match (layout, code) {
        (Layout::De, 21) => Some('z'),
        (Layout::De, 44) => Some('y'),
        (Layout::Fr, 16) => Some('a'),
        (Layout::Fr, 17) => Some('z'),
        (Layout::Fr, 30) => Some('q'),
        (Layout::Fr, 44) => Some('w'),
        (Layout::Fr, 39) => Some('m'),
        (Layout::Fr, 50) => None,
        _ => letter(code),
    };
    if let Some(c) = base {
        return Some(if shift { c.to_ascii_uppercase() } else { c });
    }
    if layout != Layout::Us {
        return (code == 57).then_some(' ');
    }
    let (plain, shifted) = match code {
        26 => ('[', '{'),
        27 => (']', '}'),
        39 => (';', ':'),
        40 => ('\'', '"'),
        41 => ('`', '~'),
        43 => ('\\', '|'),
        51 => (',', '<'),
        52 => ('.', '>'),
        53 => ('/', '?'),
        57 => (' ', ' '),
        _ => return None,
    };
    Some(if shift { shifted } else { plain })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_come_from_the_top_row_and_the_keypad_on_each_layout() {
        let top: String = (2..=11)
            .filter_map(|c| char_of(Layout::Us, c, false))
            .collect();
        assert_eq!(top, "1234567890");
        let fr: String = (2..=11)
            .filter_map(|c| char_of(Layout::Fr, c, true))
            .collect();
        assert_eq!(fr, "1234567890", "AZERTY digits need Shift");
        assert_eq!(char_of(Layout::Fr, 2, false), Some('&'));
        let de: String = (2..=11)
            .filter_map(|c| char_of(Layout::De, c, false))
            .collect();
        assert_eq!(de, "1234567890");
        for layout in [Layout::Us, Layout::De, Layout::Fr] {
            let pad: String = [82, 79, 80, 81, 75, 76, 77, 71, 72, 73]
                .iter()
                .filter_map(|c| char_of(layout, *c, false))
                .collect();
            assert_eq!(pad, "0123456789", "{layout:?}");
        }
    }

    #[test]
    fn letters_and_shift_follow_the_layout() {
        assert_eq!(char_of(Layout::Us, 46, true), Some('C'));
        assert_eq!(char_of(Layout::Us, 27, false), Some(']'), "the AIM prefix");
        assert_eq!(char_of(Layout::De, 21, false), Some('z'));
        assert_eq!(char_of(Layout::Fr, 16, false), Some('a'));
        assert_eq!(char_of(Layout::Us, KEY_ENTER, false), None);
        assert_eq!("fr".parse::<Layout>(), Ok(Layout::Fr));
        assert!("dvorak".parse::<Layout>().is_err());
    }
}
