//! The journal's disk fills up, or starts failing writes, in the middle of
//! a sale. For the first, the state directory is a small tmpfs of its own
//! (the tests run as root, as CI does) and a filler file takes its last
//! byte while a customer is still confirming; for the second, an
//! LD_PRELOAD layer (`tests/powercut/powercut.c`) fails the journal's
//! writes with EIO. Nothing more is sent once the journal cannot be written, what
//! was journaled stays, `status`, `doctor` and the log say why, and once
//! space is back and tillpay restarts, the sale in flight resolves.

use crate::till;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

use till::{next_matching, E2eTill, Speed, FINAL};

/// A tmpfs mounted over a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a `size` tmpfs over `dir`, keeping what `dir` held.
    fn over(dir: &Path, size: &str) -> Tmpfs {
        let keep = dir.with_extension("before");
        std::fs::rename(dir, &keep).expect("move aside");
        std::fs::create_dir(dir).expect("mkdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tillpay-test",
            ])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs, as root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for e in std::fs::read_dir(&keep).expect("read").flatten() {
            std::fs::copy(e.path(), dir.join(e.file_name())).expect("copy in");
        }
        Tmpfs(dir.to_path_buf())
    }

    /// Writes a filler file until the file system refuses another byte.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn status(t: &E2eTill) -> Value {
    let mut c = t.pos().await;
    c.call(1, "status", json!({})).await["result"].clone()
}

fn doctor(t: &E2eTill) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tillpay"))
        .args(["doctor", "--config"])
        .arg(&t.config)
        .output()
        .expect("doctor runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The journal's disk fails while a customer is still confirming: `fail`
/// brings the fault (and returns what ends it), `reason` is what status
/// and the log say. Checks everything the module promises.
async fn a_journal_fault_in_the_middle_of_a_sale(
    t: &mut E2eTill,
    fail: impl FnOnce() -> Box<dyn FnOnce()>,
    reason: &str,
) {
    let mut pos = t.pos().await;
    // A sale before: paid, and journaled.
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 1);
    let r = pos
        .call(
            2,
            "charge",
            json!({"order_no": "D1", "amount": 100, "auth_code": code}),
        )
        .await;
    assert_eq!(r["result"]["status"], "paid", "{r}");

    // A customer still confirming when the disk fails.
    let code = Behaviour::ConfirmsAfter(10).code(Provider::Alipay, 2);
    pos.send(json!({"jsonrpc": "2.0", "id": 3, "method": "charge", "params": {"order_no": "D2", "amount": 200, "auth_code": code}}))
        .await;
    next_matching(&mut pos, |m| m["params"]["event"] == "submitted").await;
    let heal = fail();
    let (answer, _) = pos.answer(3).await;
    // Its next journal write failed: the POS is told the truth, that the
    // sale is not settled (1007), not that it failed.
    assert_eq!(answer["error"]["code"], 1007, "{answer}");

    // Nothing new is sent: the next charge is refused before any byte
    // leaves, and the gateway never hears of it.
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 3);
    let r = pos
        .call(
            4,
            "charge",
            json!({"order_no": "D3", "amount": 300, "auth_code": code}),
        )
        .await;
    assert_eq!(r["error"]["code"], 1004, "{r}");
    assert!(
        t.sim.ledger.order("T1_D3_1").is_none(),
        "nothing sent for D3"
    );

    // status, doctor and the log say why.
    let s = status(t).await;
    assert_eq!(s["journal_ok"], false, "{s}");
    let why = s["journal_error"].as_str().unwrap_or("");
    assert!(why.contains(reason), "status says why: {s}");
    let d = doctor(t);
    assert!(d.contains("stopped charging"), "{d}");
    assert!(t.log().contains(reason), "the log says why: {}", t.log());

    // The fault ends; tillpay restarts and resolves the sale in flight.
    heal();
    t.kill9();
    t.spawn().await;
    let mut pos = t.pos().await;
    let end = Instant::now() + Duration::from_secs(30);
    let p = loop {
        let r = pos.call(5, "query", json!({"order_no": "D2"})).await;
        let done = FINAL.contains(&r["result"]["status"].as_str().unwrap_or(""));
        if done || Instant::now() > end {
            break r["result"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(FINAL.contains(&p["status"].as_str().unwrap_or("")), "{p}");
    t.assert_ledger_agrees(p["out_trade_no"].as_str().unwrap_or(""), &p);
    // What was journaled before the fault is all there.
    let r = pos.call(6, "query", json!({"order_no": "D1"})).await;
    assert_eq!(r["result"]["status"], "paid", "{r}");
    let s = status(t).await;
    assert_eq!(s["journal_ok"], true, "{s}");
    // And charging works again.
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 4);
    let r = pos
        .call(
            7,
            "charge",
            json!({"order_no": "D4", "amount": 400, "auth_code": code}),
        )
        .await;
    assert_eq!(r["result"]["status"], "paid", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_charging_loses_nothing_and_the_sale_resolves_after_restart() {
    let mut t = E2eTill::start(Speed::Fast).await;
    t.kill9();
    let disk = Tmpfs::over(&t.dir.path().join("state"), "2m");
    t.spawn().await;
    let fill = || -> Box<dyn FnOnce()> {
        let filler = disk.fill();
        Box::new(move || std::fs::remove_file(filler).expect("free space"))
    };
    a_journal_fault_in_the_middle_of_a_sale(&mut t, fill, "full").await;
    // doctor names the full file system itself.
    disk.fill();
    let d = doctor(&t);
    assert!(d.contains("the journal cannot grow"), "{d}");
    t.kill9();
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_error_mid_sale_stops_charging_and_the_sale_resolves_after_restart() {
    // A dying disk: an LD_PRELOAD layer fails every write and sync of the
    // journal with EIO while a flag file exists.
    let mut t = E2eTill::start(Speed::Fast).await;
    t.kill9();
    let so = till::build_preload("powercut", t.dir.path());
    let flag = t.dir.path().join("disk-fails");
    t.env = vec![
        ("LD_PRELOAD".into(), so.display().to_string()),
        (
            "POWERCUT_WATCH".into(),
            t.dir.path().join("state").display().to_string(),
        ),
        ("POWERCUT_SHADOW".into(), t.dir.path().display().to_string()),
        ("POWERCUT_EIO".into(), flag.display().to_string()),
    ];
    t.spawn().await;
    let f = flag.clone();
    let fail = move || -> Box<dyn FnOnce()> {
        std::fs::write(&f, "").expect("flag");
        Box::new(move || std::fs::remove_file(f).expect("unflag"))
    };
    a_journal_fault_in_the_middle_of_a_sale(&mut t, fail, "I/O error").await;
    t.kill9();
}
