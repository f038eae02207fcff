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

fn status_over(path: &Path) -> serde_json::Value {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("connect");
    // Never hang a test run on a daemon that does not answer.
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n")
        .expect("write");
    let mut line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut line)
        .expect("read");
    serde_json::from_str(&line).expect("json")
}

/// `tillpay run` as systemd starts it for `tillpay.socket`: the listening
/// socket made beforehand and passed as fd 3, with `LISTEN_FDS=1` and
/// `LISTEN_PID` set to the daemon's own pid (sd_listen_fds(3)). The shell
/// sets `LISTEN_PID=$$` and execs, so the pid it names is the daemon's.
fn socket_activated(listener: &std::os::unix::net::UnixListener, config: &Path) -> Child {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=pos exec "$0" run --config "$1""#)
        .arg(env!("CARGO_BIN_EXE_tillpay"))
        .arg(config)
        .stderr(Stdio::null());
    // SAFETY: between fork and exec, only the async-signal-safe dup2 and
    // fcntl on descriptors this process owns: put the socket at fd 3 and
    // let it survive exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd != 3 && libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn sh")
}

#[test]
fn serves_on_the_socket_systemd_passes() {
    let s = setup("");
    let activated = s.dir.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&activated).expect("bind");
    let mut child = Reaped(socket_activated(&listener, &s.config));
    // The socket exists before the daemon: a POS may connect already, and
    // is answered once the daemon is up.
    let v = status_over(&activated);
    drop(listener);
    assert_eq!(v["result"]["till_id"], "T1", "the daemon answered: {v}");
    assert!(
        !s.dir.path().join("pos.sock").exists(),
        "the configured path is not used when a socket is passed"
    );
    terminate(&child.0);
    assert_eq!(
        wait_exit(&mut child.0, Duration::from_secs(10)),
        Some(0),
        "SIGTERM is a clean stop"
    );
}
