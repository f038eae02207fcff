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
