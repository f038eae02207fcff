//! The task that owns the serial device: open it, read and frame, report
//! events, and reopen it after an unplug.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, SerialStream, StopBits};

use super::hid::device::GrabError;
use super::hid::{EventParser, Key, KeyDecoder};
use super::{classify, DoubleReadFilter, Frame, Framer, ScannerEvent, DOUBLE_READ};
use crate::config::{ScannerConfig, ScannerKind};

/// Tuning of the reader; [`Default`] is what the daemon uses.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// First wait before reopening an absent device; doubles per failure.
    pub backoff_min: Duration,
    /// Longest wait between reopen attempts.
    pub backoff_max: Duration,
    /// How often an open device's path is checked to still name it.
    pub path_check: Duration,
    /// Window of the double-read filter; `None` passes every code on (for
    /// an engine that filters itself).
    pub double_read_window: Option<Duration>,
    /// Takes a keyboard-mode gun's node exclusively (`EVIOCGRAB`); tests
    /// stand in a refusal.
    pub grab: fn(&std::fs::File) -> Result<(), GrabError>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(3),
            path_check: Duration::from_secs(1),
            double_read_window: Some(super::double_read::DEFAULT_WINDOW),
            grab: super::hid::device::grab,
        }
    }
}

/// The running reader. Dropping it stops the task and closes the device.
#[derive(Debug)]
pub struct ScannerHandle {
    device: PathBuf,
    connected: Arc<AtomicBool>,
    /// Why the device cannot be used now (absent, grab refused), for
    /// `status`; `None` while connected.
    problem: Arc<std::sync::Mutex<Option<String>>>,
    task: Option<JoinHandle<()>>,
}

impl ScannerHandle {
    /// Whether the device is open now (for `status`).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Why the device cannot be used now, if it cannot.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The configured device path.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Stops the task and waits until the device is closed.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.connected.store(false, Ordering::SeqCst);
    }
}

impl Drop for ScannerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.connected.store(false, Ordering::SeqCst);
    }
}

/// Starts the reader with default options. Must be called inside a tokio
/// runtime. If the device is absent it waits for it without reporting;
/// `Connected` comes once it is opened. The task ends by itself when
/// `events` is closed.
pub fn spawn(cfg: ScannerConfig, events: mpsc::Sender<ScannerEvent>) -> ScannerHandle {
    spawn_with(cfg, ReaderOptions::default(), events)
}

pub fn spawn_with(
    cfg: ScannerConfig,
    opts: ReaderOptions,
    events: mpsc::Sender<ScannerEvent>,
) -> ScannerHandle {
    let connected = Arc::new(AtomicBool::new(false));
    let problem = Arc::new(std::sync::Mutex::new(None));
    let device = cfg.device.clone();
    let task = tokio::spawn(run(cfg, opts, events, connected.clone(), problem.clone()));
    ScannerHandle {
        device,
        connected,
        problem,
        task: Some(task),
    }
}

/// How a connected session ended.
enum End {
    /// The device went away; the reason is reported.
    Gone(String),
    /// Nobody listens to the events any more.
    Closed,
}

/// An open device of either kind.
enum Port {
    Serial(SerialStream),
    Hid(super::hid::device::Node),
}

async fn run(
    cfg: ScannerConfig,
    opts: ReaderOptions,
    events: mpsc::Sender<ScannerEvent>,
    connected: Arc<AtomicBool>,
    problem: Arc<std::sync::Mutex<Option<String>>>,
) {
    let set_problem = |p: Option<String>| {
        *problem.lock().unwrap_or_else(|e| e.into_inner()) = p;
    };
    let device = cfg.device.display().to_string();
    let mut filter = opts.double_read_window.map(DoubleReadFilter::new);
    // A zero backoff would spin while the device is absent.
    let floor = Duration::from_millis(10);
    let mut backoff = opts.backoff_min.max(floor);
    let mut warned_absent = false;
    loop {
        let opened = match cfg.kind {
            ScannerKind::Serial => open(&cfg).map(|(p, r)| (Port::Serial(p), r)),
            ScannerKind::Hid { .. } => open_hid(&cfg, &opts).map(|(p, r)| (Port::Hid(p), r)),
        };
        match opened {
            Ok((mut port, rdev)) => {
                warned_absent = false;
                set_problem(None);
                connected.store(true, Ordering::SeqCst);
                tracing::info!(%device, "scanner connected");
                if events.send(ScannerEvent::Connected).await.is_err() {
                    return;
                }
                let started = Instant::now();
                let end = match &mut port {
                    Port::Serial(p) => {
                        session(p, &cfg, &opts, rdev, filter.as_mut(), &events).await
                    }
                    Port::Hid(f) => {
                        hid_session(f, &cfg, &opts, rdev, filter.as_mut(), &events).await
                    }
                };
                // Close at once: while the old fd is open a replugged
                // USB device comes back under a new name (ttyACM0 → ttyACM1).
                drop(port);
                connected.store(false, Ordering::SeqCst);
                let reason = match end {
                    End::Gone(reason) => reason,
                    End::Closed => return,
                };
                tracing::warn!(%device, %reason, "scanner disconnected");
                if events
                    .send(ScannerEvent::Disconnected { reason })
                    .await
                    .is_err()
                {
                    return;
                }
                // A device that keeps failing at once is retried ever more
                // slowly; one that worked for a while is retried quickly.
                if started.elapsed() >= opts.backoff_max {
                    backoff = opts.backoff_min.max(floor);
                }
            }
            Err(error) => {
                set_problem(Some(error.clone()));
                if !warned_absent {
                    if error.starts_with(GRAB_REFUSED) {
                        tracing::error!(%device, %error, "scanner cannot be taken; waiting for it");
                    } else {
                        tracing::warn!(%device, %error, "scanner not available; waiting for it");
                    }
                    warned_absent = true;
                } else {
                    tracing::debug!(%device, %error, "scanner still not available");
                }
            }
        }
        if events.is_closed() {
            return;
        }
        // Sleep, never spin, while the device is absent.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(opts.backoff_max).max(floor);
    }
}

/// Opens the device raw, 8N1 at the configured baud, exclusively; returns
/// the port and the device number its path named at open.
fn open(cfg: &ScannerConfig) -> Result<(SerialStream, Option<u64>), String> {
    let path = cfg
        .device
        .to_str()
        .ok_or_else(|| "device path is not UTF-8".to_string())?;
    // serialport opens raw (cfmakeraw), O_NOCTTY, and with `exclusive` takes
    // TIOCEXCL plus a non-blocking flock: a second tillpay (or a stray
    // `cat`) cannot share the scanner and steal half its bytes.
    let port = tokio_serial::new(path, cfg.baud)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .exclusive(true)
        .open_native_async()
        .map_err(|e| format!("cannot open: {e}"))?;
    let rdev = std::fs::metadata(&cfg.device).map(|m| m.rdev()).ok();
    Ok((port, rdev))
}

/// The start of the reason a keyboard-mode gun could not be taken.
pub const GRAB_REFUSED: &str = "grab refused";

/// Opens a keyboard-mode gun's evdev node and grabs it. A node that is not
/// an input device (a pipe standing in for one) is read ungrabbed, with a
/// warning.
fn open_hid(
    cfg: &ScannerConfig,
    opts: &ReaderOptions,
) -> Result<(super::hid::device::Node, Option<u64>), String> {
    let file = super::hid::device::open(&cfg.device)?;
    match (opts.grab)(&file) {
        Ok(()) => {}
        Err(GrabError::NotInput) => tracing::warn!(
            device = %cfg.device.display(),
            "not an input device: read without a grab, so its keys may reach other programs too"
        ),
        Err(GrabError::Refused(why)) => return Err(format!("{GRAB_REFUSED}: {why}")),
        Err(GrabError::Other(why)) => return Err(format!("{GRAB_REFUSED}: {why}")),
    }
    let rdev = std::fs::metadata(&cfg.device).map(|m| m.rdev()).ok();
    let node = super::hid::device::Node::new(file).map_err(|e| format!("cannot watch: {e}"))?;
    Ok((node, rdev))
}

/// Reads key events until the device goes away or the events channel
/// closes: characters go through the same framer as a serial gun's bytes,
/// Enter and Tab end a frame, and a frame typed too slowly is reported,
/// never charged.
// One loop: reading, the gap timer and the path check share the framer and the decoder.
async fn hid_session(
    file: &mut super::hid::device::Node,
    cfg: &ScannerConfig,
    opts: &ReaderOptions,
    rdev: Option<u64>,
    mut filter: Option<&mut DoubleReadFilter>,
    events: &mpsc::Sender<ScannerEvent>,
) -> End {
    let ScannerKind::Hid {
        layout,
        max_key_gap,
    } = cfg.kind
    else {
        return End::Gone("not a keyboard-mode scanner".into());
    };
    let mut decoder = KeyDecoder::new(layout, max_key_gap);
    let mut parser = EventParser::default();
    let mut framer = Framer::new(cfg.frame_gap);
    let mut buf = [0u8; 1024];
    let mut input = Vec::new();
    // Each frame with whether its keys came too slowly.
    let mut frames: Vec<(Frame, bool)> = Vec::new();
    let mut check = tokio::time::interval(opts.path_check);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        let gap = framer.deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            read = file.read(&mut buf) => match read {
                Ok(0) => return End::Gone("end of file from the device".to_string()),
                Ok(n) => {
                    parser.push(&buf[..n], &mut input);
                    for ev in input.drain(..) {
                        let mut out = Vec::new();
                        let slow = match decoder.push(ev) {
                            None => continue,
                            Some(Key::Char(c)) => {
                                let mut b = [0u8; 4];
                                framer.push(c.encode_utf8(&mut b).as_bytes(), Instant::now(), &mut out);
                                false
                            }
                            Some(Key::End { slow }) => {
                                framer.push(b"\r", Instant::now(), &mut out);
                                slow
                            }
                            // A key that types nothing a scan holds: the
                            // framer drops the frame as garbage.
                            Some(Key::Other(_)) => {
                                framer.push(&[0x01], Instant::now(), &mut out);
                                false
                            }
                        };
                        frames.extend(out.into_iter().map(|f| (f, slow)));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // ENODEV: the gun was unplugged.
                Err(e) => return End::Gone(format!("read error: {e}")),
            },
            () = tokio::time::sleep_until(gap.unwrap_or_else(tokio::time::Instant::now)), if gap.is_some() => {
                if let Some(f) = framer.poll_gap(Instant::now()) {
                    frames.push((f, decoder.end_frame()));
                }
            }
            _ = check.tick() => {
                if let Some(reason) = path_gone(&cfg.device, rdev) {
                    return End::Gone(reason);
                }
            }
        }
        for (frame, slow) in frames.drain(..) {
            let event = match (slow, frame) {
                (true, Frame::Text(text)) => {
                    let reason = format!(
                        "typed too slowly for a scan gun (a keyboard?): {} ({} characters)",
                        crate::domain::mask_code(text.as_str()),
                        text.as_str().len()
                    );
                    tracing::info!(%reason, "scan ignored");
                    ScannerEvent::Ignored { reason }
                }
                (_, frame) => judge(frame, filter.as_deref_mut()),
            };
            if events.send(event).await.is_err() {
                return End::Closed;
            }
        }
    }
}

/// Reads frames until the device goes away or the events channel closes.
async fn session(
    port: &mut SerialStream,
    cfg: &ScannerConfig,
    opts: &ReaderOptions,
    rdev: Option<u64>,
    mut filter: Option<&mut DoubleReadFilter>,
    events: &mpsc::Sender<ScannerEvent>,
) -> End {
    let mut framer = Framer::new(cfg.frame_gap);
    let mut buf = [0u8; 512];
    let mut frames = Vec::new();
    let mut check = tokio::time::interval(opts.path_check);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        let gap = framer.deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            read = port.read(&mut buf) => match read {
                // A tty whose device is gone reads 0 (USB unplug) or fails
                // with EIO (a pty whose master closed): both mean unplugged,
                // and reading on would spin.
                Ok(0) => return End::Gone("end of file from the device".to_string()),
                Ok(n) => framer.push(&buf[..n], Instant::now(), &mut frames),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return End::Gone(format!("read error: {e}")),
            },
            () = tokio::time::sleep_until(gap.unwrap_or_else(tokio::time::Instant::now)), if gap.is_some() => {
                frames.extend(framer.poll_gap(Instant::now()));
            }
            _ = check.tick() => {
                if let Some(reason) = path_gone(&cfg.device, rdev) {
                    return End::Gone(reason);
                }
            }
        }
        for frame in frames.drain(..) {
            let event = judge(frame, filter.as_deref_mut());
            if events.send(event).await.is_err() {
                return End::Closed;
            }
        }
    }
}

/// Some serial drivers never fail the open fd when the device is removed;
/// the path (a udev symlink) disappearing or naming another device tells.
fn path_gone(device: &Path, rdev: Option<u64>) -> Option<String> {
    match std::fs::metadata(device) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some("device path vanished".to_string())
        }
        Ok(m) if rdev.is_some_and(|r| r != m.rdev()) => {
            Some("device path now names another device".to_string())
        }
        _ => None,
    }
}

/// A frame → the event to report, logging only masked text.
fn judge(frame: Frame, filter: Option<&mut DoubleReadFilter>) -> ScannerEvent {
    let event = match frame {
        Frame::Dropped { reason } => ScannerEvent::Ignored { reason },
        Frame::Text(text) => match classify(&text) {
            Err(reason) => ScannerEvent::Ignored { reason },
            Ok(code) => {
                let repeat_within =
                    filter.and_then(|f| (!f.admit(&code, Instant::now())).then(|| f.window()));
                match repeat_within {
                    Some(window) => ScannerEvent::Ignored {
                        reason: format!(
                            "{DOUBLE_READ}: {} again within {} ms",
                            code.masked(),
                            window.as_millis()
                        ),
                    },
                    None => ScannerEvent::Code(code),
                }
            }
        },
    };
    match &event {
        ScannerEvent::Code(code) => {
            tracing::info!(provider = %code.provider(), code = %code.masked(), "payment code scanned");
        }
        ScannerEvent::Ignored { reason } => tracing::info!(%reason, "scan ignored"),
        _ => {}
    }
    event
}
