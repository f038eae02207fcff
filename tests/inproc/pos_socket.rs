//! The POS socket over a real Unix socket (docs/pos-protocol.md).
//!
//! Over 400 lines: the POS protocol's cases, one test each, against one daemon harness.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{json, Value};
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

use common::{Conn, TestTill};

fn code(b: Behaviour, p: Provider, serial: u64) -> String {
    b.code(p, serial)
}

fn err_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {v}"))
}

#[tokio::test]
async fn standard_errors_have_their_codes_and_the_connection_survives() {
    let till = TestTill::start(vec![], 0o660).await;
    let mut c = till.connect().await;
    c.send_raw(b"{not json\n").await;
    let e = c.next().await.expect("answer");
    assert_eq!(err_code(&e), -32700);
    assert_eq!(e["id"], Value::Null);
    // The same connection still works.
    let ok = c.call(1, "status", json!({})).await;
    assert_eq!(ok["result"]["till_id"], "T1");

    c.send_raw(b"[1,2]\n").await;
    assert_eq!(err_code(&c.next().await.expect("answer")), -32600);
    c.send(json!({"jsonrpc": "1.0", "id": 2, "method": "status"}))
        .await;
    assert_eq!(err_code(&c.next().await.expect("answer")), -32600);
    assert_eq!(
        err_code(&c.call(3, "pay_everything", json!({})).await),
        -32601
    );
    let e = c
        .call(4, "charge", json!({"order_no": "A1", "amount": "12.34"}))
        .await;
    assert_eq!(err_code(&e), -32602);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("amount"),
        "{e}"
    );
    let e = c
        .call(5, "charge", json!({"order_no": "A1", "amount": 12.5}))
        .await;
    assert_eq!(err_code(&e), -32602, "a float is not an amount in fen");
    let e = c
        .call(6, "charge", json!({"order_no": "bad order!", "amount": 1}))
        .await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("order_no"),
        "{e}"
    );
    let e = c
        .call(7, "refund", json!({"order_no": "A1", "amount": 1}))
        .await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("refund_no"),
        "{e}"
    );
    let e = c.call(8, "query", json!({"order": "A1"})).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("order"),
        "{e}"
    );
    // The float trap: 1000.0 and 1e3 are not integers of fen, whatever
    // their value (docs/pos-protocol.md, "Input, exactly").
    for raw in [
        r#"{"jsonrpc":"2.0","id":9,"method":"charge","params":{"order_no":"A1","amount":1000.0}}"#,
        r#"{"jsonrpc":"2.0","id":9,"method":"charge","params":{"order_no":"A1","amount":1e3}}"#,
    ] {
        c.send_raw(format!("{raw}\n").as_bytes()).await;
        let e = c.next().await.expect("answer");
        assert_eq!(err_code(&e), -32602, "{raw}: {e}");
    }
    let long = "x".repeat(81);
    let e = c
        .call(
            10,
            "refund",
            json!({"order_no": "A1", "refund_no": "R1", "amount": 1, "reason": long}),
        )
        .await;
    assert_eq!(err_code(&e), -32602, "{e}");
    // A request without id runs and is not answered: nothing with an id
    // comes back but the answers to the two requests sent after it.
    c.send(json!({"jsonrpc": "2.0", "method": "query", "params": {"order_no": "NONE"}}))
        .await;
    for id in [11, 12] {
        c.send(json!({"jsonrpc": "2.0", "id": id, "method": "status"}))
            .await;
        loop {
            let m = c.next().await.expect("answer");
            match m.get("id") {
                None => continue,
                Some(got) => {
                    assert_eq!(got, &json!(id), "an answer to a notification: {m}");
                    break;
                }
            }
        }
    }
}

#[tokio::test]
async fn application_errors_have_their_codes() {
    let till = TestTill::start(vec![], 0o660).await;
    let mut a = till.connect().await;
    let mut b = till.connect().await;
    // 1001 busy: a second charge waiting for a scan.
    a.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": "W1", "amount": 100}})).await;
    event(&mut a, "W1", "waiting_scan").await;
    assert_eq!(
        err_code(
            &b.call(1, "charge", json!({"order_no": "W2", "amount": 100}))
                .await
        ),
        1001
    );
    // 1002 order_conflict: same order, another amount, after it was paid.
    let paid = b
        .call(2, "charge", json!({"order_no": "P1", "amount": 100, "auth_code": code(Behaviour::PaysAtOnce, Provider::Wechat, 1)}))
        .await;
    assert_eq!(paid["result"]["status"], "paid", "{paid}");
    assert_eq!(
        err_code(
            &b.call(3, "charge", json!({"order_no": "P1", "amount": 200}))
                .await
        ),
        1002
    );
    // 1005 unknown_order.
    assert_eq!(
        err_code(&b.call(4, "query", json!({"order_no": "NOPE"})).await),
        1005
    );
    // 1006 refund_rejected: more than was paid.
    let r = b
        .call(
            5,
            "refund",
            json!({"order_no": "P1", "refund_no": "R1", "amount": 101}),
        )
        .await;
    assert_eq!(err_code(&r), 1006);
    let r = b
        .call(
            6,
            "refund",
            json!({"order_no": "P1", "refund_no": "R1", "amount": 40}),
        )
        .await;
    assert_eq!(r["result"]["status"], "refunded", "{r}");
    let q = b.call(7, "query", json!({"order_no": "P1"})).await;
    assert_eq!(q["result"]["refunded_amount"], 40);
    let cancelled = b.call(8, "cancel", json!({"order_no": "W1"})).await;
    assert_eq!(cancelled["result"]["status"], "cancelled");
    let (w1, _) = a.answer(1).await;
    assert_eq!(w1["result"]["status"], "cancelled");
}

#[tokio::test]
async fn provider_unavailable_is_1003() {
    // A till with WeChat only.
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = std::sync::Arc::new(tillpay::sim::ledger::Ledger::new(Duration::from_millis(10)));
    let gw: Vec<std::sync::Arc<dyn tillpay::gateway::Gateway>> =
        vec![std::sync::Arc::new(common::LedgerGateway {
            provider: Provider::Wechat,
            ledger,
        })];
    let journal = std::sync::Arc::new(
        tillpay::journal::Journal::open(&dir.path().join("j.sqlite"), "T1").expect("journal"),
    );
    let engine = tillpay::engine::Engine::new(journal, gw, common::fast_payment());
    let socket = dir.path().join("s.sock");
    let listener = tillpay::pos::server::bind(&socket, 0o600)
        .await
        .expect("bind");
    let srv = std::sync::Arc::new(tillpay::pos::server::Server {
        ctx: std::sync::Arc::new(tillpay::pos::rpc::Context {
            hq: None,
            engine,
            till_id: "T1".into(),
            scanner: None,
        }),
        allowed_uids: vec![],
    });
    let task = tokio::spawn(srv.serve(listener));
    let mut c = Conn::open(&socket).await;
    let alipay = code(Behaviour::PaysAtOnce, Provider::Alipay, 2);
    let e = c
        .call(
            1,
            "charge",
            json!({"order_no": "A1", "amount": 100, "auth_code": alipay}),
        )
        .await;
    assert_eq!(err_code(&e), 1003);
    task.abort();
}

#[tokio::test]
async fn pipelined_requests_are_answered_by_id_while_a_charge_waits() {
    let till = TestTill::start(vec![], 0o660).await;
    let mut c = till.connect().await;
    c.send(json!({"jsonrpc": "2.0", "id": "charge-1", "method": "charge", "params": {"order_no": "A1", "amount": 5}})).await;
    // Once armed, two more requests go out without waiting for the first.
    loop {
        let n = c.next().await.expect("open");
        if n["params"]["event"] == "waiting_scan" {
            break;
        }
    }
    c.send(json!({"jsonrpc": "2.0", "id": 2, "method": "status"}))
        .await;
    c.send(json!({"jsonrpc": "2.0", "id": 3, "method": "query", "params": {"order_no": "A1"}}))
        .await;
    let mut answered = Vec::new();
    while answered.len() < 2 {
        let msg = c.next().await.expect("open");
        if msg.get("id").is_some() {
            answered.push(msg);
        }
    }
    // Both answered while the charge still waits, in whatever order.
    answered.sort_by_key(|m| m["id"].as_i64());
    assert_eq!(answered[0]["id"], 2);
    assert_eq!(answered[0]["result"]["waiting_order"], "A1");
    assert_eq!(answered[1]["id"], 3);
    assert_eq!(answered[1]["result"]["status"], "waiting_scan");
    c.send(json!({"jsonrpc": "2.0", "id": 4, "method": "cancel", "params": {"order_no": "A1"}}))
        .await;
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let msg = c.next().await.expect("open");
        if let Some(id) = msg.get("id") {
            assert_eq!(msg["result"]["status"], "cancelled");
            ids.push(id.clone());
        }
    }
    assert!(ids.contains(&json!("charge-1")) && ids.contains(&json!(4)));
}

#[tokio::test]
async fn every_client_receives_every_notification() {
    let till = TestTill::start(vec![], 0o660).await;
    let mut a = till.connect().await;
    let mut b = till.connect().await;
    let _ = b.call(0, "status", json!({})).await; // b is subscribed
    let code = code(Behaviour::ConfirmsAfter(2), Provider::Alipay, 3);
    let (res, notes_a) = {
        a.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": "N1", "amount": 7, "auth_code": code}})).await;
        a.answer(1).await
    };
    assert_eq!(res["result"]["status"], "paid");
    let events = |notes: &[Value]| -> Vec<String> {
        notes
            .iter()
            .filter(|n| n["params"]["order_no"] == "N1")
            .map(|n| n["params"]["event"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let ea = events(&notes_a);
    assert_eq!(ea.first().map(String::as_str), Some("submitted"));
    assert!(ea.contains(&"user_paying".to_string()), "{ea:?}");
    assert_eq!(ea.last().map(String::as_str), Some("paid"));
    let mut notes_b = Vec::new();
    while notes_b.len() < notes_a.len() {
        notes_b.push(b.next().await.expect("open"));
    }
    assert_eq!(events(&notes_b), ea);
    for n in notes_a.iter().chain(&notes_b) {
        assert!(
            !n.to_string().contains(&code),
            "a full code in a notification"
        );
    }
}

#[tokio::test]
async fn an_oversized_line_gets_an_error_and_the_connection_closes() {
    let till = TestTill::start(vec![], 0o660).await;
    let mut c = till.connect().await;
    let mut big = vec![b'x'; 70 * 1024];
    big.push(b'\n');
    c.send_raw(&big).await;
    let e = c.next().await.expect("an error first");
    assert_eq!(err_code(&e), -32600);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("longer"));
    assert!(c.next().await.is_none(), "then closed");
    // The daemon runs on.
    let mut d = till.connect().await;
    assert_eq!(
        d.call(1, "status", json!({})).await["result"]["till_id"],
        "T1"
    );
}

#[tokio::test]
async fn clients_beyond_the_limit_are_refused_and_a_freed_slot_is_taken_again() {
    let till = TestTill::start(vec![], 0o660).await;
    let max = tillpay::pos::server::MAX_CLIENTS;
    let mut held = Vec::new();
    for i in 0..max {
        let mut c = till.connect().await;
        // Answered: the connection holds a slot.
        let s = c.call(i as i64, "status", json!({})).await;
        assert_eq!(s["result"]["till_id"], "T1");
        held.push(c);
    }
    let mut extra = till.connect().await;
    let e = extra.next().await.expect("told why");
    assert_eq!(err_code(&e), -32000);
    assert_eq!(e["error"]["message"], "too many clients");
    assert!(extra.next().await.is_none(), "then closed");
    // One leaves: its slot is free again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..100 {
        let mut c = till.connect().await;
        c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "status"}))
            .await;
        let first = c.next().await.expect("an answer");
        if first.get("result").is_some() {
            again = Some(first);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(again.is_some(), "the freed slot was never given out");
}

#[tokio::test]
async fn a_client_with_its_requests_all_running_is_not_read_until_one_ends() {
    let till = TestTill::start(vec![], 0o660).await;
    let max = tillpay::pos::server::MAX_IN_FLIGHT as u64;
    let mut c = till.connect().await;
    // As many charges as may run, each waiting for its customer (polled,
    // then revoked after 800 ms), then one more request.
    for i in 0..max {
        let code = code(Behaviour::NeverConfirms, Provider::Alipay, 700 + i);
        c.send(json!({"jsonrpc": "2.0", "id": i, "method": "charge", "params": {"order_no": format!("F{i}"), "amount": 100, "auth_code": code}}))
            .await;
    }
    c.send(json!({"jsonrpc": "2.0", "id": "late", "method": "status"}))
        .await;
    // The status is not taken until a charge has ended: the first answer
    // is a charge's, and every request is answered in the end.
    let mut answers = Vec::new();
    while answers.len() < max as usize + 1 {
        let msg = c.next().await.expect("open");
        if msg.get("id").is_some() {
            answers.push(msg);
        }
    }
    assert_ne!(answers[0]["id"], "late", "{:?}", answers[0]);
    assert_eq!(answers[0]["result"]["status"], "revoked");
    assert!(answers
        .iter()
        .any(|a| a["id"] == "late" && a["result"]["till_id"] == "T1"));
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_slows_nobody() {
    let till = TestTill::start(vec![], 0o660).await;
    let silent = std::os::unix::net::UnixStream::connect(&till.socket).expect("connect");
    let mut busy = till.connect().await;
    let _ = busy.call(0, "status", json!({})).await;
    // A reader that keeps up, in the background.
    let (mut reader, mut writer) = (busy.reader, busy.writer);
    let counted = tokio::spawn(async move {
        let mut n = 0usize;
        let mut line = String::new();
        while tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line)
            .await
            .unwrap_or(0)
            > 0
        {
            n += 1;
            line.clear();
            if n == 3000 {
                break;
            }
        }
        n
    });
    // Far more notification bytes than a socket buffer and the queue hold.
    let reason = "r".repeat(1000);
    for batch in 0..60 {
        for _ in 0..50 {
            till.engine
                .emit_scanner("ignored", json!({"reason": reason, "batch": batch}));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        counted.await.expect("join"),
        3000,
        "the reading client got every notification"
    );
    tokio::io::AsyncWriteExt::write_all(&mut writer, b"")
        .await
        .expect("still connected");
    // The silent client was cut off: its stream ends after what was buffered.
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut sink = Vec::new();
    let r = std::io::Read::read_to_end(&mut &silent, &mut sink);
    assert!(r.is_ok(), "the daemon closed the silent client: {r:?}");
    assert!(sink.len() < 3000 * 1000, "it did not get everything");
}

#[tokio::test]
async fn a_client_leaving_mid_charge_does_not_stop_the_payment() {
    let till = TestTill::start(vec![], 0o660).await;
    {
        let mut c = till.connect().await;
        let code = code(Behaviour::ConfirmsAfter(3), Provider::Wechat, 5);
        c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": "D1", "amount": 9, "auth_code": code}})).await;
        event(&mut c, "D1", "submitted").await;
    } // gone
    let mut c = till.connect().await;
    for _ in 0..50 {
        let q = c.call(1, "query", json!({"order_no": "D1"})).await;
        if q["result"]["status"] == "paid" {
            assert_eq!(
                till.ledger
                    .money_kept(q["result"]["out_trade_no"].as_str().unwrap_or("")),
                9
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the payment did not finish after its client left");
}

#[tokio::test]
async fn the_socket_file_gets_its_mode_a_stale_one_is_replaced_a_live_one_refused() {
    let till = TestTill::start(vec![], 0o660).await;
    let mode = std::fs::metadata(&till.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    let e = tillpay::pos::server::bind(&till.socket, 0o660).await;
    assert!(
        matches!(e, Err(tillpay::pos::server::BindError::InUse { .. })),
        "a live socket is refused"
    );
    let stale = till.dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let l = tillpay::pos::server::bind(&stale, 0o600).await;
    assert!(l.is_ok(), "a stale socket file is replaced");
}

#[tokio::test]
async fn a_uid_not_allowed_is_refused() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let till = TestTill::start(vec![4242], 0o666).await;
    if !root {
        // Without root the test cannot become another user; the decision
        // itself is unit-tested in pos::server.
        let mut c = till.connect().await;
        let r = c.next_or_status().await;
        assert_eq!(err_code(&r), -32000);
        return;
    }
    // As root: connect as nobody (65534), who is not in allowed_uids.
    use std::os::unix::process::CommandExt;
    let script = format!(
        "import socket;s=socket.socket(socket.AF_UNIX);s.connect({:?});print(s.makefile().readline())",
        till.socket.display().to_string()
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .uid(65534)
            .gid(65534)
            .output()
    })
    .await
    .expect("join")
    .expect("python3 runs");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|_| panic!("{line} {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(err_code(&v), -32000);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("allowed_uids"));
    // Root itself is always let in.
    let mut c = till.connect().await;
    assert_eq!(
        c.call(1, "status", json!({})).await["result"]["till_id"],
        "T1"
    );
}

trait NextOrStatus {
    async fn next_or_status(&mut self) -> Value;
}

impl NextOrStatus for Conn {
    async fn next_or_status(&mut self) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": 1, "method": "status"}))
            .await;
        self.next().await.expect("an answer")
    }
}

#[tokio::test]
async fn a_sale_waiting_for_an_operator_is_refused_until_resolved_over_the_socket() {
    let till = common::TestTill::start(vec![], 0o600).await;
    let mut c = till.connect().await;
    let stuck_code = Behaviour::RevokeFails.code(Provider::Wechat, 61);
    let stuck = c
        .call(
            1,
            "charge",
            json!({"order_no": "OP1", "amount": 300, "auth_code": stuck_code}),
        )
        .await;
    assert_eq!(stuck["result"]["status"], "needs_attention", "{stuck}");
    let fresh = Behaviour::PaysAtOnce.code(Provider::Wechat, 62);
    let again = c
        .call(
            2,
            "charge",
            json!({"order_no": "OP1", "amount": 300, "auth_code": fresh}),
        )
        .await;
    assert_eq!(again["error"]["code"], 1002, "{again}");
    let s = c.call(3, "status", json!({})).await;
    assert_eq!(s["result"]["needs_attention"], 1, "{s}");
    assert_eq!(s["result"]["journal_error"], Value::Null);
    // The operator checked the portal: not paid.
    let bad = c
        .call(
            4,
            "resolve",
            json!({"order_no": "OP1", "as": "maybe", "operator": "ops", "note": "x"}),
        )
        .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("as"),
        "{bad}"
    );
    let r = c
        .call(
            5,
            "resolve",
            json!({"order_no": "OP1", "as": "unpaid", "operator": "ops", "note": "portal: closed"}),
        )
        .await;
    assert_eq!(r["result"]["status"], "failed", "{r}");
    let paid = c
        .call(
            6,
            "charge",
            json!({"order_no": "OP1", "amount": 300, "auth_code": fresh}),
        )
        .await;
    assert_eq!(paid["result"]["status"], "paid", "{paid}");
}

#[tokio::test]
async fn status_says_when_the_journal_cannot_be_read_instead_of_zero() {
    let till = common::TestTill::start(vec![], 0o600).await;
    let mut c = till.connect().await;
    let conn = rusqlite::Connection::open(&till.journal_path).expect("open");
    conn.execute_batch("ALTER TABLE attempts RENAME TO attempts_gone")
        .expect("break the journal");
    let s = c.call(1, "status", json!({})).await;
    assert_eq!(s["result"]["needs_attention"], Value::Null, "{s}");
    assert!(
        s["result"]["journal_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{s}"
    );
    assert_eq!(s["result"]["journal_ok"], false, "{s}");
}

/// Reads `c` until the `payment.event` `event` of `order` (every client
/// gets every notification).
async fn event(c: &mut Conn, order: &str, event: &str) {
    loop {
        let msg = c.next().await.expect("connection open");
        if msg["method"] == "payment.event"
            && msg["params"]["order_no"] == order
            && msg["params"]["event"] == event
        {
            return;
        }
    }
}
