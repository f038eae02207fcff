//! A pseudo-terminal pair: the virtual scan gun of the demo, training mode
//! and the tests. The daemon opens the
//! slave by path like a real serial scanner; the demo writes codes to the
//! master as a scan gun would send them.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

pub struct Pty {
    master: File,
    /// Kept open so the slave does not hang up between the daemon's opens.
    _slave: OwnedFd,
    pub path: PathBuf,
}

impl Pty {
    pub fn open() -> std::io::Result<Pty> {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: openpty writes two fds and a NUL-terminated name into the
        // buffers we own (128 bytes is more than PATH_MAX for /dev/pts/N);
        // termios and winsize may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                name.as_mut_ptr(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: openpty succeeded, so both fds are open and ours alone.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // SAFETY: openpty NUL-terminated the name inside the buffer.
        let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
        Ok(Pty {
            master,
            _slave: slave,
            path: PathBuf::from(path.to_string_lossy().into_owned()),
        })
    }

    /// Sends a scan as a scan gun in serial mode does: the code, then CR.
    pub fn scan(&mut self, code: &str) -> std::io::Result<()> {
        self.master.write_all(code.as_bytes())?;
        self.master.write_all(b"\r")?;
        self.master.flush()
    }
}

impl Pty {
    /// A pty whose slave end is raw, so bytes pass unchanged: what stands in
    /// for a keyboard-mode gun's evdev node (these machines have no uinput).
    pub fn open_raw() -> std::io::Result<Pty> {
        let p = Pty::open()?;
        let fd = p._slave.as_raw_fd();
        // SAFETY: a zeroed termios is a valid out-buffer for tcgetattr; the
        // fd is the open slave this Pty owns.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(p)
    }

    /// Types `text` and then Enter as a gun in keyboard mode on a US layout
    /// does: a key-down and key-up `input_event` per key, with Shift where
    /// the character needs it, `gap_us` microseconds apart.
    pub fn type_keys(&mut self, text: &str, gap_us: i64) -> std::io::Result<()> {
        use crate::scanner::hid::keymap::{self, Layout, KEY_ENTER, KEY_LEFTSHIFT};
        use crate::scanner::hid::InputEvent;
        let mut t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let mut out = Vec::new();
        let mut key = |code: u16, shift: bool, t: &mut i64| {
            if shift {
                out.extend(InputEvent::key(KEY_LEFTSHIFT, 1, *t).to_bytes());
            }
            out.extend(InputEvent::key(code, 1, *t).to_bytes());
            out.extend(InputEvent::key(code, 0, *t + 300).to_bytes());
            if shift {
                out.extend(InputEvent::key(KEY_LEFTSHIFT, 0, *t + 400).to_bytes());
            }
            *t += gap_us;
        };
        for c in text.chars() {
            let found = (1..=100u16)
                .flat_map(|code| [(code, false), (code, true)])
                .find(|(code, shift)| keymap::char_of(Layout::Us, *code, *shift) == Some(c));
            let Some((code, shift)) = found else {
                return Err(std::io::Error::other(format!("no US key types {c:?}")));
            };
            key(code, shift, &mut t);
        }
        key(KEY_ENTER, false, &mut t);
        self.master.write_all(&out)?;
        self.master.flush()
    }

    /// What a program whose terminal this is has written so far, without
    /// waiting for more (a test reading what a person would see).
    pub fn read_output(&mut self) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let fd = self.master.as_raw_fd();
        // SAFETY: fcntl(2) on a descriptor this struct owns, adding
        // O_NONBLOCK to its flags; no memory is passed.
        let rc = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Raw bytes, as a noisy or slow scan gun sends them.
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.master.write_all(bytes)?;
        self.master.flush()
    }
}
