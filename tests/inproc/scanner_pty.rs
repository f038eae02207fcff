//! The serial reader against real pseudo-terminals: the test writes scans
//! into the master; the reader opens the slave by a symlink path, as it
//! would open udev's `/dev/tillpay-scanner`.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

use tillpay::config::ScannerConfig;
use tillpay::scanner::{self, ReaderOptions, ScannerEvent, ScannerHandle};

const GAP: Duration = Duration::from_millis(50);
/// Longest wait for an event that should come.
const PATIENCE: Duration = Duration::from_secs(5);

/// A pty pair: the test holds the master (the scan gun's end).
struct Pty {
    master: File,
    _slave: OwnedFd,
    slave_path: PathBuf,
}

impl Pty {
    fn open() -> Pty {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two fds into the two ints; the name, termios
        // and winsize pointers may be null (then it neither writes a name
        // nor sets modes). Each fd is owned by exactly one File/OwnedFd.
        let (master, slave) = unsafe {
            let rc = libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            );
            assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
            (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
        };
        let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", {
            use std::os::fd::AsRawFd;
            slave.as_raw_fd()
        }))
        .expect("slave path");
        Pty {
            master,
            _slave: slave,
            slave_path,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to pty master");
    }
}

/// A tempdir with a `scanner` symlink, repointed atomically as udev does.
struct Link {
    dir: tempfile::TempDir,
}

impl Link {
    fn new() -> Link {
        Link {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("scanner")
    }
    fn point_at(&self, target: &Path) {
        let tmp = self.dir.path().join("scanner.new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).expect("symlink");
        std::fs::rename(&tmp, self.path()).expect("rename symlink");
    }
    fn remove(&self) {
        std::fs::remove_file(self.path()).expect("remove symlink");
    }
}

fn config(device: PathBuf) -> ScannerConfig {
    ScannerConfig {
        device,
        baud: 9600,
        frame_gap: GAP,
        kind: Default::default(),
    }
}

struct Events {
    rx: mpsc::Receiver<ScannerEvent>,
    /// Every event seen, to check no reason ever holds a full code.
    seen: Vec<ScannerEvent>,
}

impl Events {
    async fn next(&mut self) -> ScannerEvent {
        let ev = timeout(PATIENCE, self.rx.recv())
            .await
            .expect("no scanner event in time")
            .expect("reader ended");
        self.seen.push(ev.clone());
        ev
    }

    async fn code(&mut self) -> String {
        match self.next().await {
            ScannerEvent::Code(code) => code.expose().to_string(),
            other => panic!("expected a payment code, got {other:?}"),
        }
    }

    async fn ignored(&mut self) -> String {
        match self.next().await {
            ScannerEvent::Ignored { reason } => reason,
            other => panic!("expected an ignored scan, got {other:?}"),
        }
    }

    async fn connected(&mut self) {
        match self.next().await {
            ScannerEvent::Connected => {}
            other => panic!("expected Connected, got {other:?}"),
        }
    }

    async fn disconnected(&mut self) -> String {
        match self.next().await {
            ScannerEvent::Disconnected { reason } => reason,
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }

    async fn nothing_for(&mut self, d: Duration) {
        if let Ok(ev) = timeout(d, self.rx.recv()).await {
            panic!("expected no event, got {ev:?}");
        }
    }

    fn assert_no_full_code_in_reasons(&self, codes: &[&str]) {
        for ev in &self.seen {
            let text = format!("{ev:?}");
            for code in codes {
                assert!(!text.contains(code), "full code in {text}");
            }
        }
    }
}

fn start(device: PathBuf, opts: ReaderOptions) -> (ScannerHandle, Events) {
    let (tx, rx) = mpsc::channel(16);
    let handle = scanner::spawn_with(config(device), opts, tx);
    (handle, Events { rx, seen: vec![] })
}

/// Distinct WeChat codes, so the double-read filter stays out of the way.
fn wechat(n: u32) -> String {
    format!("1345678901234567{n:02}")
}

const ALIPAY: &str = "28456789012345678901";

#[tokio::test]
async fn scans_over_a_pty_become_payment_codes_or_reasons() {
    let mut pty = Pty::open();
    let link = Link::new();
    link.point_at(&pty.slave_path);
    let (handle, mut ev) = start(link.path(), ReaderOptions::default());
    ev.connected().await;
    assert!(handle.connected());
    assert_eq!(handle.device(), link.path());

    // Every terminator; CRLF makes no extra (empty) frame.
    pty.send(format!("{}\r", wechat(1)).as_bytes());
    assert_eq!(ev.code().await, wechat(1));
    pty.send(format!("{ALIPAY}\n").as_bytes());
    assert_eq!(ev.code().await, ALIPAY);
    pty.send(format!("{}\r\n{}\r\n", wechat(2), wechat(3)).as_bytes());
    assert_eq!(ev.code().await, wechat(2));
    assert_eq!(ev.code().await, wechat(3));

    // No terminator: the silence gap ends the frame, not before it.
    let sent = Instant::now();
    pty.send(wechat(4).as_bytes());
    assert_eq!(ev.code().await, wechat(4));
    assert!(sent.elapsed() >= GAP, "frame ended before the gap");

    // An AIM symbology identifier and spaces are stripped.
    pty.send(format!(" ]C0{} \r", wechat(5)).as_bytes());
    assert_eq!(ev.code().await, wechat(5));

    // One byte at a time, with pauses shorter than the gap: one code.
    for b in format!("{}\r", wechat(6)).bytes() {
        pty.send(&[b]);
        sleep(Duration::from_millis(15)).await;
    }
    assert_eq!(ev.code().await, wechat(6));

    // Garbage before a valid code, and a product barcode.
    pty.send(format!("hello?\r{}\r", wechat(7)).as_bytes());
    assert!(ev.ignored().await.starts_with(scanner::NOT_A_PAYMENT_CODE));
    assert_eq!(ev.code().await, wechat(7));
    pty.send(b"6901234567892\r");
    let reason = ev.ignored().await;
    assert!(reason.starts_with(scanner::NOT_A_PAYMENT_CODE), "{reason}");
    assert!(!reason.contains("6901234567892"), "{reason}");

    // An overlong frame is dropped; the code after it still arrives.
    let mut long = vec![b'1'; 1_000];
    long.extend_from_slice(format!("\r{}\r", wechat(8)).as_bytes());
    pty.send(&long);
    assert!(ev
        .ignored()
        .await
        .starts_with("frame longer than 256 bytes"));
    assert_eq!(ev.code().await, wechat(8));

    // Non-printable bytes drop the frame.
    pty.send(format!("\x1b{}\r{}\r", wechat(9), wechat(10)).as_bytes());
    assert!(ev.ignored().await.starts_with("non-printable byte 0x1b"));
    assert_eq!(ev.code().await, wechat(10));

    // The same code read again at once is a double read.
    pty.send(format!("{}\r", wechat(10)).as_bytes());
    let reason = ev.ignored().await;
    assert!(reason.starts_with(scanner::DOUBLE_READ), "{reason}");

    ev.nothing_for(GAP * 3).await;
    let codes: Vec<String> = (1..=10).map(wechat).collect();
    let mut all: Vec<&str> = codes.iter().map(String::as_str).collect();
    all.push(ALIPAY);
    ev.assert_no_full_code_in_reasons(&all);
    handle.shutdown().await;
}

/// CPU time (user + system) of the calling thread. The tests run on a
/// current-thread runtime, so this is the reader task's time too.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut ru), 0);
        ru
    };
    let us =
        |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    us(ru.ru_utime) + us(ru.ru_stime)
}

#[tokio::test]
async fn unplug_is_reported_and_replug_is_found_without_spinning_meanwhile() {
    let mut pty = Pty::open();
    let link = Link::new();
    link.point_at(&pty.slave_path);
    let (handle, mut ev) = start(link.path(), ReaderOptions::default());
    ev.connected().await;
    pty.send(format!("{}\r", wechat(1)).as_bytes());
    assert_eq!(ev.code().await, wechat(1));

    // Unplug: the pty goes away; its slave path with it.
    drop(pty);
    let reason = ev.disconnected().await;
    assert!(!handle.connected(), "still connected after: {reason}");

    // While it is absent: no events, and next to no CPU.
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    ev.nothing_for(Duration::from_millis(1_500)).await;
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    assert!(
        cpu < wall / 10,
        "reader used {cpu:?} CPU in {wall:?} while the device was absent"
    );
    assert!(!handle.connected());

    // Replug: a new pty behind the same symlink.
    let mut pty = Pty::open();
    link.point_at(&pty.slave_path);
    ev.connected().await;
    assert!(handle.connected());
    pty.send(format!("{}\r", wechat(2)).as_bytes());
    assert_eq!(ev.code().await, wechat(2));
}

#[tokio::test]
async fn scanner_plugged_in_after_start_is_found() {
    let link = Link::new();
    let (handle, mut ev) = start(link.path(), ReaderOptions::default());
    ev.nothing_for(Duration::from_millis(300)).await;
    assert!(!handle.connected());

    let mut pty = Pty::open();
    link.point_at(&pty.slave_path);
    ev.connected().await;
    pty.send(format!("]Q1{ALIPAY}\r\n").as_bytes());
    assert_eq!(ev.code().await, ALIPAY);
}

#[tokio::test]
async fn device_is_held_exclusively_and_a_vanished_path_is_an_unplug() {
    let mut pty = Pty::open();
    let link = Link::new();
    link.point_at(&pty.slave_path);
    let opts = ReaderOptions {
        path_check: Duration::from_millis(100),
        ..ReaderOptions::default()
    };
    let (handle, mut ev) = start(link.path(), opts);
    ev.connected().await;

    // A second opener (another tillpay) is refused.
    let second = tokio_serial::SerialPortBuilderExt::open_native_async(tokio_serial::new(
        link.path().to_string_lossy(),
        9600,
    ));
    assert!(second.is_err(), "a second open of the scanner succeeded");

    // udev removes the symlink on unplug even if the tty lingers.
    link.remove();
    let reason = ev.disconnected().await;
    assert!(reason.contains("vanished"), "{reason}");
    assert!(!handle.connected());

    // The symlink comes back: reconnected, and scans flow again.
    link.point_at(&pty.slave_path);
    ev.connected().await;
    pty.send(format!("{}\r", wechat(3)).as_bytes());
    assert_eq!(ev.code().await, wechat(3));
}

#[tokio::test]
async fn shutdown_stops_the_reader_and_frees_the_device() {
    let pty = Pty::open();
    let link = Link::new();
    link.point_at(&pty.slave_path);
    let (handle, mut ev) = start(link.path(), ReaderOptions::default());
    ev.connected().await;
    handle.shutdown().await;
    // The events channel closes: the task is gone.
    let end = timeout(PATIENCE, ev.rx.recv())
        .await
        .expect("channel closes");
    assert!(end.is_none(), "event after shutdown: {end:?}");
    // And the device can be opened again (the exclusive lock is released).
    let again = tokio_serial::SerialPortBuilderExt::open_native_async(tokio_serial::new(
        link.path().to_string_lossy(),
        9600,
    ));
    assert!(again.is_ok(), "device still locked after shutdown");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_codes_only_masked() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Thread-local: on this current-thread runtime the reader task logs here.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut pty = Pty::open();
    let link = Link::new();
    link.point_at(&pty.slave_path);
    let (handle, mut ev) = start(link.path(), ReaderOptions::default());
    ev.connected().await;
    let code = wechat(42);
    pty.send(format!("{code}\r{code}\r]C0{code}9\r").as_bytes());
    assert_eq!(ev.code().await, code);
    assert!(ev.ignored().await.starts_with(scanner::DOUBLE_READ));
    assert!(ev.ignored().await.starts_with(scanner::NOT_A_PAYMENT_CODE));
    handle.shutdown().await;

    let text = String::from_utf8_lossy(&logs.0.lock().expect("log buffer")).to_string();
    assert!(
        text.contains("1345**********6742"),
        "masked code not logged:\n{text}"
    );
    assert!(!text.contains(&code), "full code in the log:\n{text}");
}
