//! The two pieces of systemd's protocol the daemon speaks, without a
//! library: `sd_notify` datagrams (READY, STATUS, WATCHDOG, STOPPING) and
//! socket activation (`LISTEN_FDS`).

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (e.g. `"READY=1\nSTATUS=serving"`) to `$NOTIFY_SOCKET`,
/// if systemd gave one. Failures are logged, never fatal.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = UnixDatagram::unbound().and_then(|sock| {
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            // An abstract socket: a leading NUL instead of '@'.
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, if set for us.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// The listening socket systemd passed (fd 3), if `LISTEN_PID` is us.
pub fn listen_fd() -> Option<std::os::unix::net::UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    use std::os::fd::FromRawFd;
    // SAFETY: systemd's protocol hands us fd 3 (SD_LISTEN_FDS_START) open
    // and owned by this process when LISTEN_PID is our pid; nothing else
    // in the process uses fd 3, and we take ownership exactly once
    // (the variables are removed below so a second call returns None).
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) };
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDNAMES");
    Some(listener)
}
