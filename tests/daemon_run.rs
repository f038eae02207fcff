//! `tillpay run` as systemd runs it: exit codes, READY and watchdog pings
//! over NOTIFY_SOCKET, socket activation via LISTEN_FDS, a clean SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("wechat-key");
    std::fs::write(&key, "192006250b4c09247ec02edce69f6a2d").expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = dir.path().join("tillpay.toml");
    let text = format!(
        "[till]\nid = \"T1\"\nstate_dir = {state:?}\n[pos]\nsocket = {sock:?}\n[wechat]\nbase_url = \"http://127.0.0.1:9\"\nappid = \"wx2421b1c4370ec43b\"\nmch_id = \"10000100\"\napi_key_file = {key:?}\n{extra}",
        state = dir.path().join("state").display().to_string(),
        sock = dir.path().join("pos.sock").display().to_string(),
        key = key.display().to_string(),
    );
    std::fs::write(&config, text).expect("write");
    Setup { dir, config }
}

fn tillpay() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tillpay"))
}

/// A child process that is killed if the test panics before it stops it,
/// so a failing test never leaves a daemon behind holding the test's pipes.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

fn terminate(child: &Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

#[test]
fn a_config_it_cannot_use_exits_78_naming_the_key() {
    let s = setup("[payment]\npoll_intervall_ms = 5\n");
    let out = tillpay()
        .args(["run", "--config"])
        .arg(&s.config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("poll_intervall_ms"),
        "{out:?}"
    );
    let missing = tillpay()
        .args(["run", "--config", "/nonexistent/tillpay.toml"])
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(78));
}

fn datagrams(
    sock: &UnixDatagram,
    until: impl Fn(&[String]) -> bool,
    within: Duration,
) -> Vec<String> {
    let mut got = Vec::new();
    let end = Instant::now() + within;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !until(&got) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    got
}

#[test]
fn ready_after_listening_then_watchdog_pings_then_a_clean_stop() {
    let s = setup("");
    let notify_path = s.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind");
    let mut child = Reaped(
        tillpay()
            .args(["run", "--config"])
            .arg(&s.config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "200000")
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    // Pings may start before READY (start-up keeps the watchdog fed); wait
    // for three after it.
    let pings_after_ready = |g: &[String]| match g.iter().position(|m| m.contains("READY=1")) {
        Some(r) => g[r..].iter().filter(|m| m.contains("WATCHDOG=1")).count(),
        None => 0,
    };
    let got = datagrams(
        &notify,
        |g| pings_after_ready(g) >= 3,
        Duration::from_secs(15),
    );
    let ready = got
        .iter()
        .position(|m| m.contains("READY=1"))
        .expect("READY sent");
    assert!(
        got[..ready].iter().any(|m| m.contains("STATUS=")),
        "status lines before ready: {got:?}"
    );
    // READY means the POS socket is served.
    assert!(
        s.dir.path().join("pos.sock").exists(),
        "socket listening at READY"
    );
    let pings = got[ready..]
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(pings >= 3, "{got:?}");
    terminate(&child.0);
    let rest = datagrams(
        &notify,
        |g| g.iter().any(|m| m.contains("STOPPING=1")),
        Duration::from_secs(5),
    );
    assert!(rest.iter().any(|m| m.contains("STOPPING=1")), "{rest:?}");
    assert_eq!(
        wait_exit(&mut child.0, Duration::from_secs(10)),
        Some(0),
        "SIGTERM is a clean stop"
    );
}

/// The pid of the process serving `stream`, from SO_PEERCRED.
fn peer_pid(stream: &std::os::unix::net::UnixStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "SO_PEERCRED");
    cred.pid
}

fn status_over(path: &Path) -> (serde_json::Value, i32) {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("connect");
    // Never hang a test run on a daemon that does not answer.
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n")
        .expect("write");
    let pid = peer_pid(&s);
    let mut line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut line)
        .expect("read");
    (serde_json::from_str(&line).expect("json"), pid)
}

#[test]
fn serves_on_the_socket_systemd_passes() {
    let s = setup("");
    let activated = s.dir.path().join("activated.sock");
    // systemd-socket-activate binds the socket and execs tillpay with
    // LISTEN_FDS=1 / LISTEN_PID set, as tillpay.socket would.
    let mut child = Reaped(
        Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(&activated)
            .arg(env!("CARGO_BIN_EXE_tillpay"))
            .args(["run", "--config"])
            .arg(&s.config)
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-socket-activate runs"),
    );
    let end = Instant::now() + Duration::from_secs(10);
    while !activated.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (v, daemon_pid) = status_over(&activated);
    assert_eq!(v["result"]["till_id"], "T1", "{v}");
    assert!(
        !s.dir.path().join("pos.sock").exists(),
        "the configured path is not used when a socket is passed"
    );
    // SIGTERM the daemon itself (systemd-socket-activate may have forked it).
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(daemon_pid, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(10);
    // SAFETY: kill with signal 0 only probes that the pid exists.
    while unsafe { libc::kill(daemon_pid, 0) } == 0 && Instant::now() < end {
        if daemon_pid == child.0.id() as i32 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if daemon_pid == child.0.id() as i32 {
        assert_eq!(wait_exit(&mut child.0, Duration::from_secs(10)), Some(0));
    } else {
        // SAFETY: as above.
        assert_ne!(
            unsafe { libc::kill(daemon_pid, 0) },
            0,
            "the daemon stopped on SIGTERM"
        );
        terminate(&child.0);
        let _ = wait_exit(&mut child.0, Duration::from_secs(5));
    }
}
