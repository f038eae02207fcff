//! The keyboard-mode (HID) reader fed the kernel's `struct input_event`
//! stream through a raw pseudo-terminal standing in for the evdev node
//! (these machines have no uinput): keys with Shift, the keypad, repeats,
//! a slow typist, a function key, a grab refused, unplug and replug.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::timeout;

use tillpay::config::{ScannerConfig, ScannerKind};
use tillpay::scanner::hid::device::GrabError;
use tillpay::scanner::hid::{keymap, InputEvent, Layout};
use tillpay::scanner::{self, ReaderOptions, ScannerEvent, ScannerHandle};
use tillpay::sim::pty::Pty;

const PATIENCE: Duration = Duration::from_secs(5);
const WECHAT: &str = "134567890123456789";

fn config(device: PathBuf) -> ScannerConfig {
    ScannerConfig {
        device,
        baud: 9600,
        frame_gap: Duration::from_millis(300),
        kind: ScannerKind::Hid {
            layout: Layout::Us,
            max_key_gap: Duration::from_millis(50),
        },
    }
}

fn start(device: PathBuf, opts: ReaderOptions) -> (ScannerHandle, mpsc::Receiver<ScannerEvent>) {
    let (tx, rx) = mpsc::channel(16);
    (scanner::spawn_with(config(device), opts, tx), rx)
}

async fn next(rx: &mut mpsc::Receiver<ScannerEvent>) -> ScannerEvent {
    timeout(PATIENCE, rx.recv())
        .await
        .expect("no scanner event in time")
        .expect("reader ended")
}

/// A symlink to the pty's slave, as udev makes `/dev/tillpay-scanner`.
fn link(dir: &tempfile::TempDir, pty: &Pty) -> PathBuf {
    let p = dir.path().join("scanner");
    let tmp = dir.path().join("scanner.new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&pty.path, &tmp).expect("symlink");
    std::fs::rename(&tmp, &p).expect("rename");
    p
}

fn keys(events: &[(u16, i32, i64)]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|(code, value, t)| InputEvent::key(*code, *value, *t).to_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_mode_scans_become_payment_codes_or_reasons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pty = Pty::open_raw().expect("pty");
    let (_h, mut rx) = start(link(&dir, &pty), ReaderOptions::default());
    assert_eq!(next(&mut rx).await, ScannerEvent::Connected);

    // A gun with the AIM prefix on: `]C0` (Shift for C), then the code.
    pty.type_keys(&format!("]C0{WECHAT}"), 2_000).expect("type");
    match next(&mut rx).await {
        ScannerEvent::Code(c) => assert_eq!(c.expose(), WECHAT),
        other => panic!("{other:?}"),
    }

    // Keypad digits, right Shift held over nothing, a repeat, Tab to end.
    let t = 1_000_000;
    let mut evs = vec![
        (keymap::KEY_RIGHTSHIFT, 1, t),
        (keymap::KEY_RIGHTSHIFT, 0, t + 100),
    ];
    let code = "284567890123456789";
    let pad = |c: char| match c {
        '0' => 82,
        '1' => 79,
        '2' => 80,
        '3' => 81,
        '4' => 75,
        '5' => 76,
        '6' => 77,
        '7' => 71,
        '8' => 72,
        _ => 73,
    };
    for (i, c) in code.chars().enumerate() {
        let at = t + 1_000 + i as i64 * 2_000;
        evs.push((pad(c), 1, at));
        if i == 3 {
            evs.push((pad(c), 2, at + 10)); // autorepeat: no second digit
        }
        evs.push((pad(c), 0, at + 300));
    }
    evs.push((keymap::KEY_TAB, 1, t + 40_000));
    pty.write_raw(&keys(&evs)).expect("write");
    match next(&mut rx).await {
        ScannerEvent::Code(c) => assert_eq!(c.expose(), code),
        other => panic!("{other:?}"),
    }

    // A person typing the same digits, 180 ms apart: never a charge.
    pty.type_keys("134567890123456780", 180_000).expect("type");
    match next(&mut rx).await {
        ScannerEvent::Ignored { reason } => {
            assert!(reason.contains("typed too slowly"), "{reason}");
            assert!(!reason.contains("134567890123456780"), "masked: {reason}");
        }
        other => panic!("{other:?}"),
    }

    // F1 inside a frame: garbage, reported.
    let mut evs: Vec<(u16, i32, i64)> = vec![
        (2, 1, 5_000_000),
        (59, 1, 5_001_000),
        (keymap::KEY_ENTER, 1, 5_002_000),
    ];
    evs.push((2, 0, 5_000_100));
    pty.write_raw(&keys(&evs)).expect("write");
    assert!(matches!(next(&mut rx).await, ScannerEvent::Ignored { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_is_reported_and_replug_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pty = Pty::open_raw().expect("pty");
    let path = link(&dir, &pty);
    let (handle, mut rx) = start(path, ReaderOptions::default());
    assert_eq!(next(&mut rx).await, ScannerEvent::Connected);
    drop(pty);
    assert!(matches!(
        next(&mut rx).await,
        ScannerEvent::Disconnected { .. }
    ));
    assert!(!handle.connected());
    let mut pty = Pty::open_raw().expect("pty");
    link(&dir, &pty);
    assert_eq!(next(&mut rx).await, ScannerEvent::Connected);
    pty.type_keys(WECHAT, 2_000).expect("type");
    assert!(matches!(next(&mut rx).await, ScannerEvent::Code(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grab_refused_is_a_clear_problem_and_nothing_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pty = Pty::open_raw().expect("pty");
    let opts = ReaderOptions {
        grab: |_| {
            Err(GrabError::Refused(
                "another program holds the device (EVIOCGRAB: busy)".into(),
            ))
        },
        ..ReaderOptions::default()
    };
    let (handle, mut rx) = start(link(&dir, &pty), opts);
    pty.type_keys(WECHAT, 2_000).expect("type");
    assert!(
        timeout(Duration::from_millis(700), rx.recv())
            .await
            .is_err(),
        "nothing is read from a device another program holds"
    );
    assert!(!handle.connected());
    let problem = handle.problem().expect("a problem");
    assert!(
        problem.starts_with("grab refused") && problem.contains("another program"),
        "{problem}"
    );
}
