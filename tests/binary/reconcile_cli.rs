//! `tillpay reconcile` against the simulator's bills: downloaded with the
//! configured credentials, or read from files (payment-rules.md §20).

use crate::till;

use std::time::Duration;

use serde_json::{json, Value};
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

use till::{E2eTill, Speed};

async fn reconcile(t: &E2eTill, extra: &[&str]) -> (Option<i32>, String, String) {
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let mut args = vec![
        "reconcile".to_string(),
        "--config".into(),
        t.config.display().to_string(),
        "--date".into(),
        today,
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tillpay"))
            .args(args)
            .output()
            .expect("runs")
    })
    .await
    .expect("join");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A day of sales on both providers: paid, declined, revoked after the
/// money was taken (a revoke-caused refund), and a partial refund.
async fn trade(t: &E2eTill) {
    trade_with(t, &[Provider::Wechat, Provider::Alipay]).await
}

/// As [`trade`], with `providers`' codes.
async fn trade_with(t: &E2eTill, providers: &[Provider]) {
    let mut pos = t.pos().await;
    for (i, provider) in providers.iter().copied().enumerate() {
        let o = |s: &str| format!("{s}{i}");
        let paid = pos
            .call(1, "charge", json!({"order_no": o("PAID"), "amount": 1234, "auth_code": Behaviour::PaysAtOnce.code(provider, 100 + i as u64)}))
            .await;
        assert_eq!(paid["result"]["status"], "paid");
        let declined = pos
            .call(2, "charge", json!({"order_no": o("NO"), "amount": 50, "auth_code": Behaviour::InsufficientFunds.code(provider, 110 + i as u64)}))
            .await;
        assert_eq!(declined["result"]["status"], "failed");
        let refund = pos
            .call(
                3,
                "refund",
                json!({"order_no": o("PAID"), "refund_no": o("RF"), "amount": 234}),
            )
            .await;
        // WeChat only accepts a refund at first; the daemon confirms it.
        let status = refund["result"]["status"].as_str().unwrap_or("");
        assert!(matches!(status, "refunded" | "processing"), "{refund}");
        let mut refunded = 0;
        for _ in 0..200 {
            let p = pos.call(5, "query", json!({"order_no": o("PAID")})).await;
            refunded = p["result"]["refunded_amount"].as_u64().unwrap_or(0);
            if refunded == 234 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(refunded, 234, "confirmed without a resend");
        // Paid, but the answer is lost and the cashier cancels: the revoke
        // gives the money back.
        let mut c = t.pos().await;
        c.send(json!({"jsonrpc": "2.0", "id": 9, "method": "charge", "params": {"order_no": o("LOST"), "amount": 700, "auth_code": Behaviour::AnswerLost.code(provider, 120 + i as u64)}})).await;
        // The pay request is on its way when the cashier cancels.
        let lost = o("LOST");
        till::next_matching(&mut c, |m| {
            m["params"]["order_no"] == lost.as_str() && m["params"]["event"] == "submitted"
        })
        .await;
        let cancelled: Value = pos.call(4, "cancel", json!({"order_no": o("LOST")})).await;
        assert_eq!(cancelled["result"]["status"], "revoked", "{cancelled}");
    }
}

#[tokio::test]
async fn a_day_reconciles_clean_including_revoke_refunds_and_partial_refunds() {
    let t = E2eTill::start(Speed::Fast).await;
    trade(&t).await;
    let (code, out, err) = reconcile(&t, &["--json"]).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}\n{err}"));
    assert_eq!(v["discrepancies"], json!([]), "{v}\n{err}");
    // Per provider: paid, refund, declined (absent both sides), revoked.
    assert_eq!(v["matched"], 8, "{v}");
    assert_eq!(code, Some(0));
    let (code, table, _) = reconcile(&t, &[]).await;
    assert_eq!(code, Some(0));
    assert!(
        table.contains("no discrepancies") && table.contains("wechat") && table.contains("alipay"),
        "{table}"
    );
}

#[tokio::test]
async fn an_archived_day_still_reconciles_clean_from_its_months_file() {
    let t = E2eTill::start(Speed::Fast).await;
    trade(&t).await;
    let (code, out, err) = reconcile(&t, &["--json"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    // The clean day is recorded; its sales move to the month's archive
    // (`tillpay journal archive` keeps 90 days at least: the journal's own
    // call is used here, with today inside the window).
    let journal = t.dir.path().join("state/journal.sqlite");
    let today = chrono::Local::now().date_naive();
    let tomorrow = (today + chrono::Days::new(1))
        .format("%Y-%m-%d")
        .to_string();
    let month = today.format("%Y-%m").to_string();
    let moved = {
        let j = tillpay::journal::Journal::open(&journal, "T1").expect("journal");
        let done = j
            .archive_month(&month, &tomorrow, &tillpay::journal::archive_dir(&journal))
            .expect("archive");
        assert!(
            j.sale("PAID0").expect("read").is_none(),
            "left the live journal"
        );
        done.sales
    };
    assert!(moved >= 4, "the day's settled sales moved: {moved}");
    let (code, out, err) = reconcile(&t, &["--json"]).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}\n{err}"));
    assert_eq!(v["discrepancies"], json!([]), "{v}\n{err}");
    assert_eq!(v["matched"], 8, "{v}");
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_day_through_an_acquirer_reconciles_clean_for_three_wallets_from_one_bill() {
    let t = till::E2eTill::start_api(Speed::Fast, tillpay::sim::WechatApi::V2, |sim, _| {
        let keys = tempfile::tempdir().expect("tempdir").keep();
        sim.write_acquirer_table(&keys, 1000)
            .expect("acquirer table")
    })
    .await;
    trade_with(
        &t,
        &[Provider::Wechat, Provider::Alipay, Provider::Unionpay],
    )
    .await;
    let (code, out, err) = reconcile(&t, &["--json"]).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}\n{err}"));
    assert_eq!(v["discrepancies"], json!([]), "{v}\n{err}");
    // Per wallet: paid, refund, declined (absent both sides), revoked.
    assert_eq!(v["matched"], 12, "{v}");
    assert_eq!(code, Some(0));
    let (_, table, _) = reconcile(&t, &[]).await;
    assert!(table.contains("unionpay"), "{table}");
}

// One day of a till, then its reconciliation: the steps depend on each other.
#[tokio::test]
async fn a_sale_the_gateway_does_not_know_is_missing_remote_and_a_garbled_file_exits_2() {
    let t = E2eTill::start(Speed::Fast).await;
    trade(&t).await;
    // Fetch today's WeChat bill as the gateway serves it, then reconcile a
    // copy with the first paid row cut out.
    let cfg = t.sim.wechat_config(Duration::from_secs(1));
    let gw = tillpay::gateway::wechat::WechatGateway::new(&cfg, "T1", Duration::from_secs(2))
        .expect("client");
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let tillpay::gateway::BillAnswer::File(bytes) =
        tillpay::gateway::Gateway::bill(&gw, &today).await
    else {
        panic!("no bill");
    };
    let text = String::from_utf8(bytes).expect("utf8");
    let good = t.dir.path().join("wx.csv");
    std::fs::write(&good, &text).expect("write");
    let (code, out, err) = reconcile(
        &t,
        &["--json", "--wechat-bill", good.to_str().expect("path")],
    )
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    // The file was for WeChat only: Alipay, configured too, was still
    // downloaded and checked, not silently skipped.
    let (code, table, err) = reconcile(&t, &["--wechat-bill", good.to_str().expect("path")]).await;
    assert_eq!(code, Some(0), "{table}{err}");
    assert!(
        table.lines().any(|l| l.starts_with("alipay")),
        "alipay checked too:\n{table}"
    );
    let cut: String = text.lines().take(2).collect::<Vec<_>>().join("\n");
    let truncated = t.dir.path().join("cut.csv");
    std::fs::write(&truncated, cut).expect("write");
    let (code, _, err) = reconcile(&t, &["--wechat-bill", truncated.to_str().expect("path")]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("truncated"), "{err}");
    // A bill with no rows: every paid sale of the day is missing remotely.
    let empty = t.dir.path().join("empty.csv");
    let header = text.lines().next().expect("header");
    std::fs::write(
        &empty,
        format!("{header}\r\n总交易单数,应结订单总金额,退款总金额\r\n`0,`0.00,`0.00\r\n"),
    )
    .expect("write");
    let csv = t.dir.path().join("report.csv");
    let (code, out, _) = reconcile(
        &t,
        &[
            "--json",
            "--wechat-bill",
            empty.to_str().expect("path"),
            "--csv",
            csv.to_str().expect("path"),
        ],
    )
    .await;
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&out).expect("json");
    let kinds: Vec<(&str, &str)> = v["discrepancies"]
        .as_array()
        .expect("array")
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or(""),
                d["out_trade_no"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("missing_remote", "T1_PAID0_1"),
            ("missing_remote", "T1_LOST0_1"),
            ("missing_remote", "T1_PAID0_1")
        ],
        "{v}"
    );
    let report = std::fs::read_to_string(&csv).expect("csv");
    assert!(
        report.starts_with("date,kind,provider,out_trade_no,local,remote\n")
            && report.lines().count() == 4,
        "{report}"
    );
}
