//! Many real tills (`tillpay run` against the simulator) selling and
//! syncing to a real `tillpay-hq` on PostgreSQL at once, while HQ is
//! killed and restarted; a till that sold through a whole HQ outage
//! catches up; then the fleet API agrees with every till's own journal and
//! with the simulator's ledger.

mod common;

use std::time::{Duration, Instant};

use common::{HqProcess, TillProcess};
use serde_json::{json, Value};
use tillpay::domain::Provider;
use tillpay::sim::behaviour::Behaviour;

/// `n` sales on `till`, codes from `serial`; every tenth is declined.
async fn sell(till: &TillProcess, prefix: &str, n: u64, serial: u64) -> Vec<(String, String)> {
    let mut pos = till.pos().await;
    let mut sold = Vec::new();
    for i in 0..n {
        let provider = if i % 2 == 0 {
            Provider::Wechat
        } else {
            Provider::Alipay
        };
        let b = if i % 10 == 9 {
            Behaviour::InsufficientFunds
        } else {
            Behaviour::PaysAtOnce
        };
        let order = format!("{prefix}{i}");
        let p = pos
            .call(
                "charge",
                json!({"order_no": order, "amount": 100 + i, "auth_code": b.code(provider, serial + i), "operator_id": "alice"}),
                |_| {},
            )
            .await
            .expect("charge");
        let status = p["status"].as_str().unwrap_or("").to_string();
        assert!(matches!(status.as_str(), "paid" | "failed"), "{order}: {p}");
        sold.push((order, status));
    }
    sold
}

/// Waits until HQ acknowledges every event the till has.
async fn synced(till: &TillProcess, patience: Duration) {
    let end = Instant::now() + patience;
    let mut pos = till.pos().await;
    loop {
        let s = pos.call("status", json!({}), |_| {}).await.expect("status");
        let hw = s["hq"]["high_water"].as_i64().unwrap_or(-1);
        if hw == till.last_event() {
            return;
        }
        assert!(
            Instant::now() < end,
            "till {} not synced: {s}\n{}",
            till.id,
            till.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tills_sell_and_sync_through_an_hq_restart_and_the_fleet_api_agrees() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let db = common::fresh_db(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::hq_config(dir.path(), &db, 0);
    let mut hq = HqProcess::start(&cfg);
    // Restarts come back on the same address.
    let port = hq.port();
    let cfg = common::hq_config(dir.path(), &db, port);
    let url = hq.url();
    let tokens: Vec<(String, &str, &str)> = [("S1", "T1"), ("S1", "T2"), ("S2", "T3")]
        .into_iter()
        .map(|(store, till)| (common::add_till(&cfg, store, till), store, till))
        .collect();
    let sim = tillpay::sim::Simulator::start(Duration::from_millis(10))
        .await
        .expect("simulator");
    // A second instance on the same database: T3 syncs through it.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let hq2 = HqProcess::start(&common::hq_config(dir2.path(), &db, 0));
    let mut tills = Vec::new();
    for (token, _, till) in &tokens {
        let via = if *till == "T3" {
            hq2.url()
        } else {
            url.clone()
        };
        tills.push(TillProcess::start(&sim, till, &via, token).await);
    }
    // The three sell at once; HQ is killed in the middle of it.
    let (t1, t2, t3) = (&tills[0], &tills[1], &tills[2]);
    let selling = async {
        tokio::join!(
            sell(t1, "A", 30, 1_000),
            sell(t2, "B", 30, 2_000),
            sell(t3, "C", 30, 3_000)
        )
    };
    let restart = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        hq.kill9();
        tokio::time::sleep(Duration::from_millis(700)).await;
    };
    let ((a, b, c), ()) = tokio::join!(selling, restart);
    // While its HQ instance is down, T1 sells on (more than one batch of
    // events waits).
    let a_more = sell(t1, "D", 560, 10_000).await;
    assert!(t1.last_event() > 500, "more than one batch waits");
    hq = HqProcess::start(&cfg);
    for t in &tills {
        synced(t, Duration::from_secs(60)).await;
    }
    // The outage was seen, and sales went on through it.
    let log = t1.log();
    assert!(
        log.contains("HQ sync failed") && log.contains("reachable again"),
        "{log}"
    );
    // The fleet API agrees with each till's journal.
    let listed = common::get(&url, "/v1/tills").await;
    for t in &tills {
        let row = listed
            .as_array()
            .and_then(|a| a.iter().find(|r| r["till_id"] == t.id.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(row["high_water"], t.last_event(), "{row}");
    }
    let mut a_all = a;
    a_all.extend(a_more);
    let all = vec![(t1, a_all), (t2, b), (t3, c)];
    for (t, sold) in &all {
        let rows = common::get(&url, &format!("/v1/sales?till={}&limit=10000", t.id)).await;
        let rows = rows.as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), sold.len(), "till {}: every sale at HQ", t.id);
        for (order, status) in sold {
            let row = rows
                .iter()
                .find(|r| r["order_no"] == order.as_str())
                .unwrap_or_else(|| panic!("{order} missing at HQ"));
            assert_eq!(row["status"], status.as_str(), "{order}: {row}");
        }
    }
    // Per store, what HQ counts as paid is what the gateways kept.
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let totals = common::get(&url, &format!("/v1/totals?day={today}")).await;
    for (store, store_tills) in [("S1", vec!["T1", "T2"]), ("S2", vec!["T3"])] {
        let kept: u64 = store_tills
            .iter()
            .map(|t| sim.ledger.money_kept_with_prefix(&format!("{t}_")))
            .sum();
        let row = totals["stores"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["store_id"] == store))
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(row["paid_amount"], kept, "{store}: {totals}");
        assert_eq!(row["tills"], store_tills.len(), "{store}: {totals}");
    }
    // One sale's whole history, code masked.
    let one = common::get(&url, "/v1/sales/T1/A0").await;
    assert_eq!(one["status"], "paid", "{one}");
    assert!(
        !one["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .is_empty(),
        "{one}"
    );
    let masked = one["attempts"][0]["code_masked"].as_str().unwrap_or("");
    assert!(masked.contains("****"), "{one}");
    // No full payment code reached HQ, in any table.
    let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .expect("db");
    tokio::spawn(conn);
    let mut text: String = client
        .query_one(
            "SELECT concat_ws(' ',
                 (SELECT string_agg(t::text, ' ') FROM events t),
                 (SELECT string_agg(t::text, ' ') FROM sales t),
                 (SELECT string_agg(t::text, ' ') FROM attempts t),
                 (SELECT string_agg(t::text, ' ') FROM refunds t))",
            &[],
        )
        .await
        .expect("dump")
        .get(0);
    // Nor the logs, HQ's or the tills'.
    for log in [&hq.log, &hq2.log] {
        text.push_str(&std::fs::read_to_string(log).unwrap_or_default());
    }
    for t in &tills {
        text.push_str(&t.log());
    }
    // Every code sold with, paid and declined alike (as `sell` makes them).
    for (serial, n) in [(1_000u64, 30u64), (2_000, 30), (3_000, 30), (10_000, 560)] {
        for i in 0..n {
            let provider = if i % 2 == 0 {
                Provider::Wechat
            } else {
                Provider::Alipay
            };
            let b = if i % 10 == 9 {
                Behaviour::InsufficientFunds
            } else {
                Behaviour::PaysAtOnce
            };
            let code = b.code(provider, serial + i);
            assert!(!text.contains(&code), "full code {code} at HQ or in a log");
        }
    }
    drop((hq, hq2));
}

#[tokio::test]
async fn a_till_posting_another_tills_rows_is_refused_over_http() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let db = common::fresh_db(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::hq_config(dir.path(), &db, 0);
    let hq = HqProcess::start(&cfg);
    let t1 = common::add_till(&cfg, "S1", "T1");
    common::add_till(&cfg, "S2", "T2");
    let batch = json!({"till_id": "T2", "after": 0, "events": [
        {"id": 1, "at": 1_796_000_000_000i64, "order_no": "X", "out_trade_no": null, "kind": "paid", "detail": {}}
    ], "orders": []});
    let post = |token: String, body: Value| {
        let url = format!("{}/v1/sync", hq.url());
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("post");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let (status, body) = post(t1.clone(), batch.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("only its own rows"), "{body}");
    let (status, _) = post("not-a-till-token-at-all-000000".into(), batch.clone()).await;
    assert_eq!(status, 401);
    let (status, body) = post(t1, json!({"till_id": "T1"})).await;
    assert_eq!(status, 400, "{body}");
    let tills = common::get(&hq.url(), "/v1/tills").await;
    assert!(
        tills
            .as_array()
            .is_some_and(|a| a.iter().all(|t| t["high_water"] == 0)),
        "{tills}"
    );
    // The fleet API wants its own token.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/tills", hq.url()))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
}

/// POSTs `body` to the fleet API; the status and the answer.
async fn post(hq_url: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{hq_url}{path}"))
        .bearer_auth(common::API_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls `check` until it holds, up to `secs`.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        match check().await {
            None => return,
            Some(why) if Instant::now() > end => panic!("{what}: {why}"),
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_at_hq_resolves_and_refunds_and_the_till_carries_it_out() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let db = common::fresh_db(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::hq_config(dir.path(), &db, 0);
    let hq = HqProcess::start(&cfg);
    let url = hq.url();
    let token = common::add_till(&cfg, "S1", "T1");
    let sim = tillpay::sim::Simulator::start(Duration::from_millis(200))
        .await
        .expect("simulator");
    let till = TillProcess::start(&sim, "T1", &url, &token).await;
    let mut pos = till.pos().await;
    let stuck = pos
        .call(
            "charge",
            json!({"order_no": "N1", "amount": 880, "auth_code": Behaviour::RevokeFails.code(Provider::Wechat, 1)}),
            |_| {},
        )
        .await
        .expect("charge");
    assert_eq!(
        stuck["status"],
        "needs_attention",
        "{stuck}\n{}",
        till.log()
    );
    let paid = pos
        .call(
            "charge",
            json!({"order_no": "P1", "amount": 1200, "auth_code": Behaviour::PaysAtOnce.code(Provider::Alipay, 2)}),
            |_| {},
        )
        .await
        .expect("charge");
    assert_eq!(paid["status"], "paid", "{paid}");
    synced(&till, Duration::from_secs(30)).await;
    let queue = common::get(&url, "/v1/attention").await;
    assert_eq!(queue[0]["order_no"], "N1", "{queue}");
    assert_eq!(queue[0]["till_id"], "T1", "{queue}");
    // Requests that do not fit the sale are refused at HQ.
    for (path, body, want) in [
        (
            "/v1/sales/T1/P1/resolve",
            json!({"as": "paid", "note": "x", "operator": "li"}),
            409,
        ),
        (
            "/v1/sales/T1/P1/refund",
            json!({"refund_no": "HQR0", "amount": 1201, "operator": "li"}),
            409,
        ),
        (
            "/v1/sales/T1/NOPE/refund",
            json!({"refund_no": "HQR0", "amount": 1, "operator": "li"}),
            404,
        ),
        (
            "/v1/sales/T1/N1/resolve",
            json!({"as": "unpaid", "note": "", "operator": "li"}),
            400,
        ),
        (
            "/v1/sales/T1/N1/resolve",
            json!({"as": "unpaid", "note": "x"}),
            400,
        ),
    ] {
        let (status, why) = post(&url, path, body.clone()).await;
        assert_eq!(status, want, "{path} {body}: {why}");
    }
    // The two that fit are queued, in turn; a second verdict on the same
    // sale waits for the first.
    for (path, body, want) in [
        (
            "/v1/sales/T1/N1/resolve",
            json!({"as": "unpaid", "note": "the merchant portal shows no payment", "operator": "finance-li"}),
            202,
        ),
        (
            "/v1/sales/T1/N1/resolve",
            json!({"as": "paid", "note": "no, it was paid", "operator": "finance-wang"}),
            409,
        ),
        (
            "/v1/sales/T1/P1/refund",
            json!({"refund_no": "HQR1", "amount": 200, "reason": "broken cup", "operator": "finance-li"}),
            202,
        ),
    ] {
        let (status, r) = post(&url, path, body.clone()).await;
        assert_eq!(status, want, "{path} {body}: {r}");
    }
    let url2 = url.clone();
    eventually(30, "both commands done", || {
        let url = url2.clone();
        async move {
            let list = common::get(&url, "/v1/commands?till=T1").await;
            let states: Vec<&str> = list
                .as_array()?
                .iter()
                .map(|c| c["state"].as_str().unwrap_or(""))
                .collect();
            (states != ["done", "done"]).then(|| format!("{list}"))
        }
    })
    .await;
    // On the till: its journal records who resolved it, from HQ.
    let j = till.journal();
    let history = j.events("N1").expect("events");
    assert!(
        history.iter().any(|e| e.detail.contains("hq:finance-li")
            && e.detail.contains("merchant portal shows no payment")),
        "{history:?}"
    );
    let n1 = pos
        .call("query", json!({"order_no": "N1"}), |_| {})
        .await
        .expect("query");
    assert_ne!(n1["status"], "needs_attention", "{n1}");
    // The refund went to the gateway from the till.
    let url3 = url.clone();
    eventually(30, "the refund confirmed and synced", || {
        let url = url3.clone();
        async move {
            let p1 = common::get(&url, "/v1/sales/T1/P1").await;
            (p1["refunded_amount"] != 200).then(|| format!("{p1}"))
        }
    })
    .await;
    assert_eq!(sim.ledger.money_kept_with_prefix("T1_P1_"), 1000);
    let n1_hq = common::get(&url, "/v1/sales/T1/N1").await;
    assert_ne!(n1_hq["status"], "needs_attention", "{n1_hq}");
    assert_eq!(common::get(&url, "/v1/attention").await, json!([]));
    // Delivered again (as if the till had stopped before its report
    // arrived): answered from the till's kept result, not carried out twice.
    let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .expect("db");
    tokio::spawn(conn);
    client
        .batch_execute(
            "UPDATE commands SET done_at = NULL, ok = NULL, result = NULL WHERE kind = 'resolve'",
        )
        .await
        .expect("redeliver");
    let url4 = url.clone();
    eventually(30, "the resolve reported again", || {
        let url = url4.clone();
        async move {
            let list = common::get(&url, "/v1/commands?till=T1").await;
            let resolve = list
                .as_array()?
                .iter()
                .find(|c| c["kind"] == "resolve")?
                .clone();
            (resolve["state"] != "done").then(|| format!("{resolve}"))
        }
    })
    .await;
    let resolutions = till
        .journal()
        .events("N1")
        .expect("events")
        .into_iter()
        .filter(|e| e.detail.contains("hq:finance-li"))
        .count();
    assert_eq!(resolutions, 1, "carried out once");
}

#[tokio::test]
async fn a_mark_this_journal_cannot_back_is_refused_not_recorded() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let db = common::fresh_db(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::hq_config(dir.path(), &db, 0);
    let hq = HqProcess::start(&cfg);
    let token = common::add_till(&cfg, "S1", "T1");
    // HQ holds another journal's history under T1 (a reinstalled till).
    let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .expect("db");
    tokio::spawn(conn);
    client
        .batch_execute("UPDATE tills SET high_water = 1000000 WHERE till_id = 'T1'")
        .await
        .expect("mark");
    let sim = tillpay::sim::Simulator::start(Duration::from_millis(10))
        .await
        .expect("simulator");
    let till = TillProcess::start(&sim, "T1", &hq.url(), &token).await;
    let mut pos = till.pos().await;
    let paid = pos
        .call(
            "charge",
            json!({"order_no": "A1", "amount": 100, "auth_code": Behaviour::PaysAtOnce.code(Provider::Wechat, 5)}),
            |_| {},
        )
        .await
        .expect("charge");
    assert_eq!(paid["status"], "paid", "{paid}");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s = pos.call("status", json!({}), |_| {}).await.expect("status");
        if s["hq"]["failing"]
            .as_str()
            .is_some_and(|f| f.contains("another journal"))
        {
            break;
        }
        assert!(Instant::now() < end, "{s}\n{}", till.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        till.journal().hq_high_water().expect("mark"),
        Some(0),
        "not recorded"
    );
}

#[tokio::test]
async fn doctor_says_which_till_hq_knows_the_token_as() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let db = common::fresh_db(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::hq_config(dir.path(), &db, 0);
    let hq = HqProcess::start(&cfg);
    let t1 = common::add_till(&cfg, "S1", "T1");
    let t2 = common::add_till(&cfg, "S1", "T2");
    let sim = tillpay::sim::Simulator::start(Duration::from_millis(10))
        .await
        .expect("simulator");
    let till = TillProcess::start(&sim, "T1", &hq.url(), &t1).await;
    let doctor = |config: std::path::PathBuf| {
        let out = std::process::Command::new(common::tillpay_bin())
            .args(["doctor", "--config"])
            .arg(config)
            .output()
            .expect("doctor");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let line = |text: &str| {
        text.lines()
            .find(|l| l.contains(" hq"))
            .unwrap_or_default()
            .to_string()
    };
    let ok = doctor(till.config.clone());
    assert!(
        line(&ok).starts_with("OK") && ok.contains("knows this till as T1 of store S1"),
        "{ok}"
    );
    // Another till's token, then one HQ never issued.
    for (token, says) in [
        (t2.as_str(), "as till T2, not T1"),
        ("x-not-a-token-0123456789abc", "does not know"),
    ] {
        common::secret(&till.dir.path().join("hq-token"), token);
        let out = doctor(till.config.clone());
        assert!(
            line(&out).starts_with("FAIL") && out.contains(says),
            "{out}"
        );
    }
    // HQ down: a warning, not a failure of the till.
    drop(hq);
    let out = doctor(till.config.clone());
    assert!(
        line(&out).starts_with("WARN") && out.contains("sales go on"),
        "{out}"
    );
}
