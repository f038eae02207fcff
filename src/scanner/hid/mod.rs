//! Keyboard-mode (HID) scan guns, read from their evdev node: the kernel's
//! `struct input_event` stream → keys with Shift → the same frames as a
//! serial gun's. The node is grabbed (`EVIOCGRAB`), so scans never reach
//! the desktop or the POS window as keystrokes.
//!
//! - [`event`]: `input_event` records from the byte stream;
//! - [`keymap`]: key codes → characters, for the layouts guns are set to;
//! - [`decoder`]: key presses → characters and frame ends, noticing a
//!   typist too slow to be a scan gun;
//! - [`device`]: opening and grabbing the node.

pub mod decoder;
pub mod device;
pub mod event;
pub mod keymap;

pub use decoder::{Key, KeyDecoder};
pub use event::{EventParser, InputEvent};
pub use keymap::Layout;
