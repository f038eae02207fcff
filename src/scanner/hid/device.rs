//! Opening a scan gun's evdev node and taking it for tillpay alone.

use std::os::fd::AsRawFd;
use std::path::Path;

/// `EVIOCGRAB`: `_IOW('E', 0x90, int)`.
const EVIOCGRAB: libc::c_ulong = 0x4004_4590;

/// Why a node could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrabError {
    /// Another process holds the grab (a desktop's input stack, a second
    /// tillpay): scans would reach it too.
    Refused(String),
    /// Not an input device at all (a pipe standing in for one, or a wrong
    /// path): read ungrabbed.
    NotInput,
    Other(String),
}

/// Takes the device exclusively: while the grab holds, its keys reach no
/// other reader (the desktop, the POS window). The kernel lets go when the
/// file is closed, so tillpay exiting or crashing frees the keyboard.
pub fn grab(file: &std::fs::File) -> Result<(), GrabError> {
    let one: libc::c_int = 1;
    // SAFETY: EVIOCGRAB takes an int by value; the fd is open and owned by
    // `file` for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), EVIOCGRAB as _, one) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EBUSY) => Err(GrabError::Refused(
            "another program holds the device (EVIOCGRAB: busy): stop it, or the scans would reach it too".into(),
        )),
        Some(libc::ENOTTY) | Some(libc::EINVAL) => Err(GrabError::NotInput),
        _ => Err(GrabError::Other(format!("EVIOCGRAB: {e}"))),
    }
}

/// Opens `path` for reading, non-blocking (the reader waits on it with
/// epoll, so a shutdown never waits for a key press), and never as a
/// controlling terminal (a pty standing in for a node).
pub fn open(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))
}

/// An open node, read as the kernel makes records ready.
pub struct Node(tokio::io::unix::AsyncFd<std::fs::File>);

impl Node {
    pub fn new(file: std::fs::File) -> std::io::Result<Node> {
        // SAFETY: a std File owns its fd, which stays open and the same
        // until the File (moved into the AsyncFd) is dropped with it.
        unsafe { tokio::io::unix::AsyncFd::register(file) }
            .map(Node)
            .map_err(std::io::Error::from)
    }

    /// Waits for bytes and reads them; `Ok(0)` at end of file.
    pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Read;
        loop {
            let mut ready = self.0.readable().await?;
            match ready.try_io(|fd| fd.get_ref().read(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Candidate scan guns for `tillpay doctor`: the keyboard nodes under
/// `by_id` (`/dev/input/by-id`), each with its name (the link's, which
/// carries the vendor and model).
pub fn candidates(by_id: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(by_id) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-event-kbd"))
        })
        .map(|p| p.display().to_string())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_not_an_input_device_and_keyboards_are_listed_by_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"").expect("write");
        let f = open(&p).expect("open");
        assert_eq!(grab(&f), Err(GrabError::NotInput));
        for name in [
            "usb-Newland_NLS-HR22-event-kbd",
            "usb-Logitech_K120-event-kbd",
            "usb-Mouse-event-mouse",
        ] {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        let found = candidates(dir.path());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[1].ends_with("usb-Newland_NLS-HR22-event-kbd"));
        assert!(candidates(&dir.path().join("absent")).is_empty());
    }
}
