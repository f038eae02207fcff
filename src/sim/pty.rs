//! A pseudo-terminal pair: the virtual scan gun of the demo, training mode
//! and the tests. The daemon opens the
//! slave by path like a real serial scanner; the demo writes codes to the
//! master as a scan gun would send them.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
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
    /// Raw bytes, as a noisy or slow scan gun sends them.
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.master.write_all(bytes)?;
        self.master.flush()
    }
}
