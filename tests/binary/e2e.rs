//! End to end: the real `tillpay run` binary as a separate process, its
//! config pointing at the simulator run by the test (real HTTP on loopback,
//! real signatures), a pty as its scanner, a POS client on its socket.
//! Every path of payment-rules.md for both providers; each asserts the POS's final
//! Payment and the simulator's ledger: money kept if and only if paid, at
//! most one charge per sale.

use crate::till;

use std::time::Duration;

use serde_json::json;
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::WechatApi;

use till::{E2eTill, Speed};

async fn scanned_sale(t: &mut E2eTill, order: &str, amount: u64, code: &str) -> serde_json::Value {
    let mut pos = t.pos().await;
    pos.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": order, "amount": amount}})).await;
    t.wait_armed(order).await;
    t.scanner.scan(code).expect("scan");
    let (answer, _) = pos.answer(1).await;
    answer["result"].clone()
}

async fn path(provider: Provider, behaviour: Behaviour, amount: u64, want: &str) {
    path_on(WechatApi::V2, provider, behaviour, amount, want).await
}

async fn path_on(
    api: WechatApi,
    provider: Provider,
    behaviour: Behaviour,
    amount: u64,
    want: &str,
) {
    let t = E2eTill::start_api(Speed::Fast, api, |_, t| t).await;
    judge_path(t, provider, behaviour, amount, want, provider.as_str()).await
}

/// The same path with only an acquirer's channel configured: every
/// provider's codes go through it.
async fn path_via_acquirer(provider: Provider, behaviour: Behaviour, amount: u64, want: &str) {
    let t = E2eTill::start_api(Speed::Fast, WechatApi::V2, |sim, _| {
        let keys = tempfile::tempdir().expect("tempdir").keep();
        sim.write_acquirer_table(&keys, 1000)
            .expect("acquirer table")
    })
    .await;
    judge_path(t, provider, behaviour, amount, want, "acquirer").await
}

async fn judge_path(
    mut t: E2eTill,
    provider: Provider,
    behaviour: Behaviour,
    amount: u64,
    want: &str,
    channel: &str,
) {
    let code = behaviour.code(provider, 1);
    let p = scanned_sale(&mut t, "E1", amount, &code).await;
    assert_eq!(p["status"], want, "{provider} {behaviour:?}: {p}");
    assert_eq!(p["provider"], provider.as_str());
    assert_eq!(p["channel"], channel, "{p}");
    let otn = p["out_trade_no"]
        .as_str()
        .expect("out_trade_no")
        .to_string();
    t.assert_ledger_agrees(&otn, &p);
    t.stop().await;
}

macro_rules! paths {
    ($($name:ident: $behaviour:expr, $want:expr;)*) => {
        mod wechat {
            use super::*;
            $( #[tokio::test] async fn $name() { path(Provider::Wechat, $behaviour, 1234, $want).await; } )*
        }
        mod alipay {
            use super::*;
            $( #[tokio::test] async fn $name() { path(Provider::Alipay, $behaviour, 1234, $want).await; } )*
        }
        /// The same paths through the daemon speaking WeChat Pay API v3.
        mod wechat_v3 {
            use super::*;
            $( #[tokio::test] async fn $name() { path_on(WechatApi::V3, Provider::Wechat, $behaviour, 1234, $want).await; } )*
        }
        /// Through an acquirer's channel only, for each wallet's codes.
        mod acquirer {
            use super::*;
            mod wechat {
                use super::*;
                $( #[tokio::test] async fn $name() { path_via_acquirer(Provider::Wechat, $behaviour, 1234, $want).await; } )*
            }
            mod alipay {
                use super::*;
                $( #[tokio::test] async fn $name() { path_via_acquirer(Provider::Alipay, $behaviour, 1234, $want).await; } )*
            }
            mod unionpay {
                use super::*;
                $( #[tokio::test] async fn $name() { path_via_acquirer(Provider::Unionpay, $behaviour, 1234, $want).await; } )*
            }
        }
    };
}

paths! {
    paid: Behaviour::PaysAtOnce, "paid";
    confirmed_after_polls: Behaviour::ConfirmsAfter(3), "paid";
    never_confirmed_is_revoked: Behaviour::NeverConfirms, "revoked";
    declined: Behaviour::InsufficientFunds, "failed";
    expired_code: Behaviour::ExpiredCode, "failed";
    unknown_then_paid_by_query: Behaviour::SystemErrorPaid, "paid";
    unknown_then_revoked: Behaviour::SystemErrorUnpaid, "revoked";
    answer_lost_then_paid_by_query: Behaviour::AnswerLost, "paid";
    revoke_retried_then_revoked: Behaviour::RevokeRetries(2), "revoked";
    revoke_failing_needs_attention: Behaviour::RevokeFails, "needs_attention";
}

#[tokio::test]
async fn cashier_cancel_while_paying_revokes_for_both_providers() {
    let t = E2eTill::start(Speed::Fast).await;
    for (i, provider) in [Provider::Wechat, Provider::Alipay].into_iter().enumerate() {
        let order = format!("C{i}");
        let code = Behaviour::NeverConfirms.code(provider, 10 + i as u64);
        let mut pos = t.pos().await;
        pos.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": order, "amount": 500, "auth_code": code}})).await;
        // The customer is on the password screen when the cashier cancels.
        till::next_matching(&mut pos, |m| {
            m["params"]["order_no"] == order.as_str() && m["params"]["event"] == "user_paying"
        })
        .await;
        let mut cashier = t.pos().await;
        let cancelled = cashier.call(2, "cancel", json!({"order_no": order})).await;
        assert_eq!(
            cancelled["result"]["status"], "revoked",
            "{provider}: {cancelled}"
        );
        let (charged, _) = pos.answer(1).await;
        assert_eq!(charged["result"]["status"], "revoked");
        let otn = charged["result"]["out_trade_no"]
            .as_str()
            .expect("otn")
            .to_string();
        t.assert_ledger_agrees(&otn, &charged["result"]);
    }
    t.stop().await;
}

#[tokio::test]
async fn a_scan_with_no_charge_waiting_and_a_double_read_charge_nothing() {
    let mut t = E2eTill::start(Speed::Fast).await;
    let mut watcher = t.pos().await;
    let _ = watcher.call(0, "status", json!({})).await;
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 20);
    t.scanner.scan(&code).expect("scan");
    let ignored = till::next_matching(&mut watcher, |m| {
        m["method"] == "scanner.event" && m["params"]["event"] == "ignored"
    })
    .await;
    assert_eq!(ignored["params"]["reason"], "no charge waiting");
    assert!(
        t.sim.ledger.orders().is_empty(),
        "nothing reached the gateway"
    );
    // Armed: the gun reads the same code twice in a row.
    let mut pos = t.pos().await;
    pos.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": "D1", "amount": 300}})).await;
    t.wait_armed("D1").await;
    let other = Behaviour::ConfirmsAfter(2).code(Provider::Alipay, 21);
    t.scanner
        .write_raw(format!("{other}\r\n{other}\r\n").as_bytes())
        .expect("scan");
    let (answer, _) = pos.answer(1).await;
    assert_eq!(answer["result"]["status"], "paid");
    assert_eq!(
        t.sim.ledger.orders().len(),
        1,
        "the double read charged once"
    );
    assert_eq!(t.sim.ledger.orders()[0].charges, 1);
    t.stop().await;
}

#[tokio::test]
async fn a_code_used_before_is_refused_and_charges_nothing() {
    let mut t = E2eTill::start(Speed::Fast).await;
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 30);
    let p = scanned_sale(&mut t, "U1", 500, &code).await;
    assert_eq!(p["status"], "paid", "{p}");

    // Typed in by hand for another sale: refused, naming the param.
    let mut pos = t.pos().await;
    let refused = pos
        .call(
            1,
            "charge",
            json!({"order_no": "U2", "amount": 500, "auth_code": code}),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let msg = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("auth_code") && msg.contains("U1"), "{msg}");
    assert!(
        !msg.contains(&code),
        "the full code is never in an error: {msg}"
    );

    // Scanned again for another sale, past the double-read window: ignored
    // with the reason, and the sale still takes a fresh code.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let mut watcher = t.pos().await;
    let _ = watcher.call(0, "status", json!({})).await;
    pos.send(json!({"jsonrpc": "2.0", "id": 2, "method": "charge", "params": {"order_no": "U3", "amount": 700}})).await;
    t.wait_armed("U3").await;
    t.scanner.scan(&code).expect("scan");
    let ignored = till::next_matching(&mut watcher, |m| {
        m["method"] == "scanner.event" && m["params"]["event"] == "ignored"
    })
    .await;
    let reason = ignored["params"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("already used"), "{ignored}");
    let fresh = Behaviour::PaysAtOnce.code(Provider::Alipay, 31);
    t.scanner.scan(&fresh).expect("scan");
    let (answer, _) = pos.answer(2).await;
    assert_eq!(answer["result"]["status"], "paid", "{answer}");
    assert_eq!(answer["result"]["provider"], "alipay");
    let orders = t.sim.ledger.orders();
    assert_eq!(orders.len(), 2, "the used code reached the gateway once");
    assert!(orders.iter().all(|o| o.charges == 1));
    t.stop().await;
}

/// Whether the simulator's money agrees with an answer a client got.
fn answer_agrees(t: &E2eTill, p: &serde_json::Value, context: &str) {
    let status = p["status"].as_str().unwrap_or("");
    let Some(otn) = p["out_trade_no"].as_str() else {
        assert!(status == "cancelled", "{context}: {p}");
        return;
    };
    let kept = t.sim.ledger.money_kept(otn);
    match status {
        "paid" => assert_eq!(
            kept,
            p["amount"].as_u64().unwrap_or(0),
            "{context}: told paid: {p}"
        ),
        "failed" | "revoked" | "cancelled" => {
            assert_eq!(kept, 0, "{context}: told {status}, money kept: {p}")
        }
        other => panic!("{context}: {other} is not a final answer: {p}"),
    }
}

#[tokio::test]
async fn three_clients_racing_on_one_order_are_told_only_true_things() {
    // A charge waiting for the scanner, a charge with a typed code and a
    // cancel, sent within a few milliseconds of each other on three
    // connections, round after round. Whatever order the daemon takes
    // them in, every answer matches the simulator's ledger, the cancel
    // answers a final status, and the sale kept its money at most once.
    let t = E2eTill::start(Speed::Fast).await;
    for round in 0..30u64 {
        let order = format!("RACE{round}");
        let provider = if round % 2 == 0 {
            Provider::Wechat
        } else {
            Provider::Alipay
        };
        let b = if round % 3 == 0 {
            Behaviour::ConfirmsAfter(1)
        } else {
            Behaviour::PaysAtOnce
        };
        let code = b.code(provider, 500 + round);
        let (mut a, mut b_conn, mut c) = (t.pos().await, t.pos().await, t.pos().await);
        let charge = |id: i64, code: Option<&str>| {
            let mut params = json!({"order_no": order, "amount": 300});
            if let Some(code) = code {
                params["auth_code"] = json!(code);
            }
            json!({"jsonrpc": "2.0", "id": id, "method": "charge", "params": params})
        };
        a.send(charge(1, None)).await;
        tokio::time::sleep(Duration::from_millis(round % 3)).await;
        b_conn.send(charge(2, Some(&code))).await;
        tokio::time::sleep(Duration::from_millis(round % 2)).await;
        c.send(
            json!({"jsonrpc": "2.0", "id": 3, "method": "cancel", "params": {"order_no": order}}),
        )
        .await;
        let (wa, _) = a.answer(1).await;
        let (wb, _) = b_conn.answer(2).await;
        let (wc, _) = c.answer(3).await;
        let context = format!("round {round}: {wa} | {wb} | {wc}");
        let cancel = &wc["result"];
        assert!(cancel.is_object(), "{context}: the cancel must answer");
        answer_agrees(&t, cancel, &context);
        for w in [&wa, &wb] {
            match w.get("result") {
                Some(p) => answer_agrees(&t, p, &context),
                // The order was taken: 1002 (or the scanner busy: 1001).
                None => assert!(
                    matches!(w["error"]["code"].as_i64(), Some(1001 | 1002)),
                    "{context}"
                ),
            }
        }
        let end = c.call(4, "query", json!({"order_no": order})).await;
        let kept = t.sim.ledger.money_kept_with_prefix(&format!("T1_{order}_"));
        let paid = end["result"]["status"] == "paid";
        assert_eq!(kept, if paid { 300 } else { 0 }, "{context}: ended {end}");
        // Whoever was told paid, the sale is paid.
        for w in [&wa, &wb, &wc] {
            if w["result"]["status"] == "paid" {
                assert!(paid, "{context}");
            }
        }
        // A sale left open can be charged again: nothing is stuck.
        if !paid {
            let again = Behaviour::PaysAtOnce.code(provider, 900 + round);
            let p = c
                .call(
                    5,
                    "charge",
                    json!({"order_no": order, "amount": 300, "auth_code": again}),
                )
                .await;
            assert_eq!(p["result"]["status"], "paid", "{context}: {p}");
        }
    }
    t.stop().await;
}

fn journal_cli(t: &E2eTill, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tillpay"))
        .arg("journal")
        .arg("--config")
        .arg(&t.config)
        .args(args)
        .output()
        .expect("tillpay journal runs")
}

#[tokio::test]
async fn journal_resolve_goes_through_the_running_daemon_and_works_without_one() {
    let mut t = E2eTill::start(Speed::Fast).await;
    let mut pos = t.pos().await;
    for (i, order) in ["OPA", "OPB"].into_iter().enumerate() {
        let code = Behaviour::RevokeFails.code(Provider::Alipay, 70 + i as u64);
        let p = pos
            .call(
                i as i64,
                "charge",
                json!({"order_no": order, "amount": 450, "auth_code": code}),
            )
            .await;
        assert_eq!(p["result"]["status"], "needs_attention", "{p}");
    }
    // Options go before or after the subcommand.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tillpay"))
        .args(["journal", "show", "OPA", "--config"])
        .arg(&t.config)
        .output()
        .expect("tillpay journal runs");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OPA"),
        "{out:?}"
    );
    // While the daemon runs, the verdict goes to the order's owner.
    let out = journal_cli(
        &t,
        &[
            "resolve",
            "OPA",
            "--as",
            "paid",
            "--note",
            "portal shows it paid",
            "--operator",
            "alice",
            "--transaction-id",
            "2026120122001400000001",
            "--paid-at",
            "2026-12-01 10:15:00",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("through the daemon"), "{stdout}");
    let p = pos.call(9, "query", json!({"order_no": "OPA"})).await;
    assert_eq!(p["result"]["status"], "paid", "{p}");
    let paid_at = p["result"]["paid_at"].as_str().unwrap_or("");
    assert!(
        paid_at.starts_with("2026-12-01T10:15:00"),
        "the payment's own time: {paid_at}"
    );
    // With the daemon stopped, the same rules apply to the journal itself.
    t.kill9();
    let out = journal_cli(
        &t,
        &[
            "resolve",
            "OPB",
            "--as",
            "unpaid",
            "--note",
            "portal: closed",
            "--operator",
            "bob",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("through the daemon"));
    t.spawn().await;
    let mut pos = t.pos().await;
    let p = pos.call(10, "query", json!({"order_no": "OPB"})).await;
    assert_eq!(p["result"]["status"], "failed", "{p}");
    let show = journal_cli(&t, &["show", "OPB"]);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("bob"),
        "{show:?}"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_sale_scanned_by_a_gun_in_keyboard_mode_is_charged_through_the_real_daemon() {
    let mut t = E2eTill::start(Speed::Fast).await;
    // Swap the serial gun for a keyboard-mode one behind the same udev name.
    t.kill9();
    t.scanner = tillpay::sim::pty::Pty::open_raw().expect("pty");
    let link = t.dir.path().join("tillpay-scanner");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&t.scanner.path, &link).expect("symlink");
    let text = std::fs::read_to_string(&t.config).expect("config");
    let text = text.replace(
        "frame_gap_ms = 30\n",
        "kind = \"hid\"\nmax_key_gap_ms = 50\n",
    );
    assert!(text.contains("kind = \"hid\""), "{text}");
    std::fs::write(&t.config, text).expect("config");
    t.spawn().await;
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 77);
    let mut pos = t.pos().await;
    pos.send(json!({"jsonrpc": "2.0", "id": 1, "method": "charge", "params": {"order_no": "K1", "amount": 321}}))
        .await;
    tokio::time::timeout(Duration::from_secs(20), t.wait_armed("K1"))
        .await
        .unwrap_or_else(|_| panic!("never armed:\n{}", t.log()));
    t.scanner.type_keys(&code, 2_000).expect("type");
    let (answer, _) = tokio::time::timeout(Duration::from_secs(20), pos.answer(1))
        .await
        .unwrap_or_else(|_| panic!("no answer:\n{}", t.log()));
    let p = &answer["result"];
    assert_eq!(p["status"], "paid", "{answer}\n{}", t.log());
    let otn = p["out_trade_no"]
        .as_str()
        .expect("out_trade_no")
        .to_string();
    t.assert_ledger_agrees(&otn, p);
    let status = pos.call(2, "status", json!({})).await;
    assert_eq!(status["result"]["scanner"]["connected"], true, "{status}");
    assert!(!t.log().contains(&code), "the full code never in the log");
    t.stop().await;
}
