//! The wall clock jumps hours back or forward in the middle of a sale, as
//! an NTP fix does on a till whose clock battery died. The daemon runs
//! under an LD_PRELOAD layer (`tests/clockjump/clockjump.c`) that moves
//! its wall clock, and only that, while a sale is in flight. Timers run on
//! the monotonic clock (payment-rules.md §8): a customer still confirming
//! is not revoked early by a jump forward, and a sale nobody confirms is
//! revoked at its deadline, not hours late, after a jump back.

use crate::till;

use std::time::{Duration, Instant};

use serde_json::json;
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

use till::{next_matching, E2eTill, Speed};

const HOURS_3: i64 = 3 * 3600;

/// How far the daemon's wall clock moved between journaling the attempt
/// and its last change, in ms.
fn wall_clock_moved_ms(t: &E2eTill, out_trade_no: &str) -> i64 {
    let path = t.dir.path().join("state/journal.sqlite");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(path, flags).expect("journal");
    conn.query_row(
        "SELECT updated_at - submitted_at FROM attempts WHERE out_trade_no = ?1",
        [out_trade_no],
        |r| r.get(0),
    )
    .expect("the attempt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_jump_during_a_sale_makes_it_neither_late_nor_early() {
    let mut t = E2eTill::start(Speed::Fast).await;
    t.kill9();
    let offset = t.dir.path().join("clock-offset");
    std::fs::write(&offset, "0").expect("offset");
    let so = till::build_preload("clockjump", t.dir.path());
    t.env = vec![
        ("LD_PRELOAD".into(), so.display().to_string()),
        ("CLOCKJUMP_FILE".into(), offset.display().to_string()),
    ];
    t.spawn().await;
    let mut serial = 0;
    for jump in [HOURS_3, -HOURS_3] {
        for provider in [Provider::Wechat, Provider::Alipay] {
            for b in [Behaviour::ConfirmsAfter(4), Behaviour::NeverConfirms] {
                serial += 1;
                std::fs::write(&offset, "0").expect("offset");
                let order = format!("J{serial}");
                let code = b.code(provider, serial);
                let mut pos = t.pos().await;
                let started = Instant::now();
                pos.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": order, "amount": 100 + serial, "auth_code": code}}))
                    .await;
                next_matching(&mut pos, |m| m["params"]["event"] == "submitted").await;
                // The jump, with the customer still on the password screen.
                std::fs::write(&offset, jump.to_string()).expect("jump");
                let (answer, _) = pos.answer(1).await;
                let took = started.elapsed();
                let p = &answer["result"];
                let ctx = format!(
                    "{order} ({provider:?}, {b:?}, jump {jump} s) after {took:?}: {answer}"
                );
                let otn = p["out_trade_no"].as_str().unwrap_or("");
                t.assert_ledger_agrees(otn, p);
                // The daemon did see the jump: the journal dates its end
                // hours away from its start.
                let seen = wall_clock_moved_ms(&t, otn) / 1000;
                assert!(
                    (seen - jump).abs() < 60,
                    "the jump was not seen ({seen} s): {ctx}"
                );
                match b {
                    // Not revoked early by a clock that leapt past the deadline.
                    Behaviour::ConfirmsAfter(_) => assert_eq!(p["status"], "paid", "{ctx}"),
                    // Revoked at the deadline (2 s here), not hours late
                    // nor at once.
                    _ => {
                        assert_eq!(p["status"], "revoked", "{ctx}");
                        assert!(took >= Duration::from_secs(2), "early: {ctx}");
                        assert!(took < Duration::from_secs(15), "late: {ctx}");
                    }
                }
            }
        }
    }
    t.kill9();
}
