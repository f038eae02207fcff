//! Relay mode end to end: a real `tillpay run` with no gateway key of its
//! own (`[hq] relay = true`), a real `tillpay-hq` holding the merchant's
//! keys on PostgreSQL, the simulator as the gateways. Every payment path
//! ends as it does on a till with its own keys; killing the till and HQ at
//! random points charges no one twice and loses no payment; an operator's
//! refund at HQ reaches the gateway once and the till's journal.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{HqProcess, TillProcess};
use serde_json::{json, Value};
use tillpay::domain::Provider;
use tillpay::pos::client::ClientError;
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::Simulator;

const FINAL: [&str; 5] = ["paid", "failed", "cancelled", "revoked", "needs_attention"];

struct Fleet {
    _dir: tempfile::TempDir,
    db: String,
    cfg: PathBuf,
    hq: HqProcess,
    sim: Simulator,
    till: TillProcess,
}

async fn fleet() -> Option<Fleet> {
    let base = common::pg_base()?;
    let db = common::fresh_db(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(Duration::from_millis(200))
        .await
        .expect("simulator");
    // WeChat's reverse allowed 1 s after the pay request, as the till is told.
    let top = "gateway_timeout_ms = 1000\n";
    let cfg = common::hq_config_with_gateways(dir.path(), &db, 0, &sim, 1000, top);
    let hq = HqProcess::start(&cfg);
    let port = hq.port();
    // Restarts come back on the same address.
    let cfg = common::hq_config_with_gateways(dir.path(), &db, port, &sim, 1000, top);
    let token = common::add_till(&cfg, "S1", "T1");
    let till = TillProcess::start_relay("T1", &hq.url(), &token).await;
    Some(Fleet {
        _dir: dir,
        db,
        cfg,
        hq,
        sim,
        till,
    })
}

/// The gateway's ledger agrees with the till's Payment: charged at most
/// once, the amount kept exactly when paid.
fn agrees(sim: &Simulator, p: &Value) -> Result<(), String> {
    let otn = p["out_trade_no"].as_str().unwrap_or("");
    let kept = sim.ledger.money_kept(otn);
    let charges = sim.ledger.order(otn).map_or(0, |o| o.charges);
    if charges > 1 {
        return Err(format!("{otn} charged {charges} times: {p}"));
    }
    let want = if p["status"] == "paid" {
        p["amount"].as_u64().unwrap_or(0)
    } else {
        0
    };
    if kept != want {
        return Err(format!(
            "{otn}: {} but the gateway kept {kept}: {p}",
            p["status"]
        ));
    }
    Ok(())
}

fn refunded(sim: &Simulator, otn: &str) -> u64 {
    sim.ledger.order(otn).map_or(0, |o| o.refunded().0)
}

/// Every row of HQ's relay tables as text.
async fn relay_tables(db: &str) -> String {
    let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let mut text = String::new();
    for table in ["relay_orders", "relay_calls"] {
        for row in client
            .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
            .await
            .expect("select")
        {
            text.push_str(&row.get::<_, String>(0));
            text.push('\n');
        }
    }
    text
}

async fn reconcile(till: &TillProcess) -> (Option<i32>, String, String) {
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let config = till.config.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::tillpay_bin())
            .arg("reconcile")
            .arg("--config")
            .arg(config)
            .args(["--date", &today, "--json"])
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

/// The payment paths of the till's own end-to-end tests, and how each ends.
const PATHS: [(Behaviour, &str); 10] = [
    (Behaviour::PaysAtOnce, "paid"),
    (Behaviour::ConfirmsAfter(3), "paid"),
    (Behaviour::NeverConfirms, "revoked"),
    (Behaviour::InsufficientFunds, "failed"),
    (Behaviour::ExpiredCode, "failed"),
    (Behaviour::SystemErrorPaid, "paid"),
    (Behaviour::SystemErrorUnpaid, "revoked"),
    (Behaviour::AnswerLost, "paid"),
    (Behaviour::RevokeRetries(2), "revoked"),
    (Behaviour::RevokeFails, "needs_attention"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_path_through_hq_ends_as_with_the_tills_own_keys_and_hq_refunds_for_an_offline_till()
{
    let Some(mut f) = fleet().await else {
        return;
    };
    // Both wallets' paths at once, each its own sale.
    let mut sales = Vec::new();
    for (i, (b, want)) in PATHS.iter().enumerate() {
        for (j, p) in [Provider::Wechat, Provider::Alipay].into_iter().enumerate() {
            let serial = 10 * i as u64 + j as u64 + 1;
            sales.push((
                format!("P{i}{}", p.as_str()),
                b.code(p, serial),
                p,
                *b,
                *want,
            ));
        }
    }
    let ended = futures_join(&f.till, &sales).await;
    let mut wrong = Vec::new();
    for ((order, code, provider, b, want), p) in sales.iter().zip(&ended) {
        if p["status"] != *want || p["channel"] != "hq" || p["provider"] != provider.as_str() {
            wrong.push(format!(
                "{order} ({provider} {b:?}): want {want} through hq, got {p}"
            ));
        }
        if let Err(e) = agrees(&f.sim, p) {
            wrong.push(e);
        }
        assert!(
            !f.till.log().contains(code.as_str()),
            "the till logged a full code"
        );
    }
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), f.till.log());
    assert_eq!(
        f.sim.ledger.early_reverses(),
        0,
        "HQ reversed sooner than WeChat allows"
    );

    // HQ's journal: every sale's number, the gateway it went to, each call
    // with its answer; a code only masked.
    let journal = relay_tables(&f.db).await;
    for ((order, code, provider, ..), p) in sales.iter().zip(&ended) {
        let otn = p["out_trade_no"].as_str().unwrap_or("");
        let line = journal
            .lines()
            .find(|l| l.contains(otn) && l.contains("\"closed\""))
            .unwrap_or_else(|| panic!("{order}: no relay_orders row\n{journal}"));
        assert!(
            line.contains(&format!("\"channel\":\"{}\"", provider.as_str())),
            "{line}"
        );
        assert!(!journal.contains(code.as_str()), "HQ journaled a full code");
        assert!(
            journal.contains(&tillpay::domain::mask_code(code)),
            "{order}: no pay call"
        );
    }
    assert!(!std::fs::read_to_string(&f.hq.log)
        .unwrap_or_default()
        .contains(&sales[0].1));

    // The day reconciles through HQ: the till's own rows of the merchant's
    // bills, relayed.
    let (code, out, err) = reconcile(&f.till).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}\n{err}"));
    // What differs is only what waits for an operator: the two sales
    // whose every revoke failed.
    let attention: Vec<&str> = ended
        .iter()
        .filter(|p| p["status"] == "needs_attention")
        .filter_map(|p| p["out_trade_no"].as_str())
        .collect();
    let differ: Vec<&str> = v["discrepancies"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|x| x["out_trade_no"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!((attention.len(), &differ), (2, &attention), "{v}\n{err}");
    let paid = ended.iter().filter(|p| p["status"] == "paid").count() as u64;
    assert!(v["matched"].as_u64().unwrap_or(0) >= paid, "{v}");
    assert_eq!(code, Some(1), "{err}");

    // The till goes offline; an operator refunds one of its sales at HQ.
    let (order, code, p) = sales
        .iter()
        .zip(&ended)
        .find(|((_, _, pr, b, _), _)| *b == Behaviour::PaysAtOnce && *pr == Provider::Alipay)
        .map(|((o, c, ..), p)| (o.clone(), c.clone(), p.clone()))
        .expect("a paid sale");
    let otn = p["out_trade_no"].as_str().expect("otn").to_string();
    f.till.kill9();
    let res = reqwest::Client::new()
        .post(format!("{}/v1/sales/T1/{order}/refund", f.hq.url()))
        .bearer_auth(common::API_TOKEN)
        .body(json!({"operator": "olga", "refund_no": "HQR1", "amount": 300, "reason": "returned goods"}).to_string())
        .send()
        .await
        .expect("POST refund");
    assert_eq!(res.status().as_u16(), 202);
    let answer: Value = serde_json::from_str(&res.text().await.expect("body")).expect("json");
    assert_eq!(answer["refunded_by_hq"]["kind"], "refunded", "{answer}");
    assert_eq!(
        refunded(&f.sim, &otn),
        300,
        "HQ refunded while the till was off"
    );
    // Back online, the till carries out the same request: recorded in its
    // journal, and the gateway refunds once.
    f.till.spawn().await;
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let mut pos = f.till.pos().await;
        let now = pos
            .call("query", json!({"order_no": order}), |_| {})
            .await
            .expect("query");
        if now["refunded_amount"] == 300 {
            break;
        }
        assert!(
            Instant::now() < end,
            "the till never recorded HQ's refund: {now}\n{}",
            f.till.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refunded(&f.sim, &otn), 300, "refunded once, not twice");
    assert_eq!(f.sim.ledger.refund_history(&otn).0, 1);
    // The same refund number again, or more than is left, is refused.
    for (body, why) in [
        (
            json!({"operator": "olga", "refund_no": "HQR1", "amount": 100}),
            "a refund number used",
        ),
        (
            json!({"operator": "olga", "refund_no": "HQR2", "amount": 1234 - 300 + 1}),
            "more than is left",
        ),
    ] {
        let res = reqwest::Client::new()
            .post(format!("{}/v1/sales/T1/{order}/refund", f.hq.url()))
            .bearer_auth(common::API_TOKEN)
            .body(body.to_string())
            .send()
            .await
            .expect("POST refund");
        assert_eq!(res.status().as_u16(), 409, "{why}");
    }
    assert_eq!(refunded(&f.sim, &otn), 300);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let cmds = common::get(&f.hq.url(), "/v1/commands?till=T1").await;
        if cmds[0]["state"] == "done" {
            break;
        }
        assert!(
            Instant::now() < end,
            "HQ never heard the refund was done: {cmds}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The sale's history at HQ shows each call HQ made for it: the pay,
    // the operator's refund, and the till's own asking again.
    let detail = common::get(&f.hq.url(), &format!("/v1/sales/T1/{order}")).await;
    let ops: Vec<&str> = detail["relayed"]
        .as_array()
        .map(|c| c.iter().filter_map(|x| x["op"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ops.first(), Some(&"pay"), "{detail}");
    assert!(
        ops.iter().filter(|o| **o == "refund").count() >= 2,
        "{ops:?}"
    );
    assert!(
        !detail.to_string().contains(&code),
        "a full code in the fleet API"
    );
}

/// Runs the sales at once; their Payments in order.
async fn futures_join(
    till: &TillProcess,
    sales: &[(String, String, Provider, Behaviour, &str)],
) -> Vec<Value> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (order, code, ..)) in sales.iter().enumerate() {
        let (socket, order, code) = (till.socket.clone(), order.clone(), code.clone());
        set.spawn(async move {
            let mut pos = tillpay::pos::client::Client::connect(&socket)
                .await
                .expect("connect");
            let p = pos
                .call(
                    "charge",
                    json!({"order_no": order, "amount": 1234, "auth_code": code}),
                    |_| {},
                )
                .await;
            (i, p.unwrap_or_else(|e| json!({"error": e.to_string()})))
        });
    }
    let mut out = vec![Value::Null; sales.len()];
    while let Some(r) = set.join_next().await {
        let (i, p) = r.expect("join");
        out[i] = p;
    }
    out
}

/// xorshift64*: a seed replays a run.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Waits for `order` to end; `None` when the till never journaled it.
async fn settle(till: &TillProcess, order: &str) -> Result<Option<Value>, String> {
    // A number HQ claimed but never sent waits out the gateway's pay
    // window before its revoke is believed: up to about 2.5 minutes.
    let end = Instant::now() + Duration::from_secs(160);
    loop {
        let mut pos = till.pos().await;
        match pos.call("query", json!({"order_no": order}), |_| {}).await {
            Err(ClientError::Rpc { code: 1005, .. }) => return Ok(None),
            Ok(p) if FINAL.contains(&p["status"].as_str().unwrap_or("")) => return Ok(Some(p)),
            Ok(p) if Instant::now() > end => return Err(format!("{order}: still {}", p["status"])),
            Err(e) if Instant::now() > end => return Err(format!("{order}: {e}")),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_till_and_hq_at_random_points_charges_no_one_twice_and_loses_no_payment() {
    let Some(mut f) = fleet().await else {
        return;
    };
    let seed = std::env::var("TILLPAY_RELAY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64 | 1);
    eprintln!("seed {seed} (TILLPAY_RELAY_SEED replays it)");
    let mut rng = Rng(seed);
    let rounds = std::env::var("TILLPAY_RELAY_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5u64);
    let mut problems = Vec::new();
    let (mut paid, mut unpaid, mut operator, mut never) = (0, 0, 0, 0);
    for round in 0..rounds {
        let mut sales = Vec::new();
        let mut conns = Vec::new();
        for k in 0..4 {
            let provider = [Provider::Wechat, Provider::Alipay][rng.below(2) as usize];
            let b = Behaviour::ALL[rng.below(Behaviour::ALL.len() as u64) as usize];
            let order = format!("K{round}x{k}");
            let code = b.code(provider, 1000 + round * 10 + k);
            // Sent, not awaited: its connection dies with the till.
            let mut pos = tokio::net::UnixStream::connect(&f.till.socket)
                .await
                .expect("connect");
            let line = json!({"jsonrpc": "2.0", "id": 1, "method": "charge",
                              "params": {"order_no": order, "amount": 100 + k, "auth_code": code}});
            tokio::io::AsyncWriteExt::write_all(&mut pos, format!("{line}\n").as_bytes())
                .await
                .expect("send");
            conns.push(pos);
            sales.push((order, code, b));
        }
        tokio::time::sleep(Duration::from_millis(rng.below(2500))).await;
        let victim = rng.below(3);
        if victim != 1 {
            f.till.kill9();
        }
        if victim != 0 {
            f.hq.kill9();
        }
        drop(conns);
        tokio::time::sleep(Duration::from_millis(rng.below(600))).await;
        if victim != 0 {
            f.hq = HqProcess::start(&f.cfg);
        }
        if victim != 1 {
            f.till.spawn().await;
        }
        let context = format!(
            "seed {seed} round {round} (killed {})",
            ["till", "HQ", "both"][victim as usize]
        );
        for (order, _code, b) in &sales {
            match settle(&f.till, order).await {
                Err(e) => problems.push(format!("{context}: {e}")),
                Ok(None) => {
                    let kept = f.sim.ledger.money_kept_with_prefix(&format!("T1_{order}_"));
                    if kept != 0 {
                        problems.push(format!(
                            "{context}: {order} unknown to the till, yet {kept} fen kept"
                        ));
                    }
                    never += 1;
                }
                Ok(Some(p)) => {
                    if let Err(e) = agrees(&f.sim, &p) {
                        problems.push(format!("{context}: {e}"));
                    }
                    match p["status"].as_str().unwrap_or("") {
                        "paid" => paid += 1,
                        "needs_attention" if *b == Behaviour::RevokeFails => operator += 1,
                        "needs_attention" => problems
                            .push(format!("{context}: {order} ({b:?}) needs attention: {p}")),
                        _ => unpaid += 1,
                    }
                }
            }
        }
    }
    eprintln!("{rounds} rounds: {paid} paid, {unpaid} unpaid, {operator} for an operator, {never} never journaled");
    assert!(
        problems.is_empty(),
        "{}\n--- till log ---\n{}",
        problems.join("\n"),
        f.till.log()
    );
    assert!(paid > 0, "no sale was paid: the run proved nothing");
}

/// One relayed call as a till with `token` makes it; HQ's answer.
async fn relay_call(
    hq: &HqProcess,
    token: &str,
    call: tillpay::gateway::hq::wire::Call,
) -> tillpay::gateway::hq::wire::Answer {
    use tillpay::gateway::hq::wire;
    let body = serde_json::to_vec(&wire::Request {
        nonce: "n1".into(),
        call,
    })
    .expect("json");
    let res = reqwest::Client::new()
        .post(format!("{}{}", hq.url(), wire::RELAY_PATH))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("POST /v1/relay");
    let sig = res
        .headers()
        .get(wire::SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("signed");
    let bytes = res.bytes().await.expect("body");
    assert!(
        wire::verify(token, &bytes, &sig),
        "signed for the asking till"
    );
    serde_json::from_slice::<wire::Reply>(&bytes)
        .expect("reply")
        .answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_till_cannot_pay_revoke_or_refund_under_another_tills_numbers() {
    use tillpay::domain::{out_refund_no, out_trade_no, Fen};
    use tillpay::gateway::hq::wire::{Answer, Call, Code};
    use tillpay::gateway::{PayAnswer, RefundAnswer, RefundRequest, RevokeAnswer};
    let Some(f) = fleet().await else {
        return;
    };
    let t2 = common::add_till(&f.cfg, "S2", "T2");
    let t1 = std::fs::read_to_string(f.cfg.with_file_name("token-T1")).expect("T1's token");
    let t1 = t1.trim();
    let pay = |till: &str, order: &str, otn: String, serial: u64| Call::Pay {
        out_trade_no: otn,
        order_no: order.into(),
        seq: 1,
        amount: Fen(500),
        auth_code: Code(Behaviour::PaysAtOnce.code(Provider::Alipay, serial)),
        subject: format!("sold at {till}"),
        operator_id: None,
    };
    // T2 sells through HQ.
    let theirs = out_trade_no("T2", "A", 1);
    let a = relay_call(&f.hq, &t2, pay("T2", "A", theirs.clone(), 1)).await;
    assert!(matches!(a, Answer::Pay(PayAnswer::Paid(_))), "{a:?}");
    // T1 (or whoever holds its token) tries T2's number: to pay under it,
    // to revoke it, to refund it. Each is refused and nothing moves.
    let a = relay_call(&f.hq, t1, pay("T1", "A", theirs.clone(), 2)).await;
    assert!(
        matches!(&a, Answer::Pay(PayAnswer::Failed { note, .. }) if note.code == "OTHER_TILL"),
        "{a:?}"
    );
    let a = relay_call(
        &f.hq,
        t1,
        Call::Revoke {
            out_trade_no: theirs.clone(),
        },
    )
    .await;
    assert!(
        matches!(a, Answer::Revoke(RevokeAnswer::Refused(_))),
        "{a:?}"
    );
    let refund = RefundRequest {
        out_trade_no: theirs.clone(),
        transaction_id: None,
        refund_no: out_refund_no("T1", "R1"),
        total_amount: Fen(500),
        refund_amount: Fen(500),
        reason: None,
        operator_id: None,
    };
    let a = relay_call(&f.hq, t1, Call::Refund(refund)).await;
    assert!(
        matches!(a, Answer::Refund(RefundAnswer::Failed(_))),
        "{a:?}"
    );
    let order = f.sim.ledger.order(&theirs).expect("T2's payment");
    assert_eq!(
        (
            order.charges,
            f.sim.ledger.money_kept(&theirs),
            order.refunded().0
        ),
        (1, 500, 0)
    );
    // T2's own pay sent again is not sent again: its outcome is asked.
    let a = relay_call(&f.hq, &t2, pay("T2", "A", theirs.clone(), 1)).await;
    assert!(
        matches!(&a, Answer::Pay(PayAnswer::Unknown { note, .. }) if note.code == "PAY_ALREADY_SENT"),
        "{a:?}"
    );
    assert_eq!(f.sim.ledger.order(&theirs).map(|o| o.charges), Some(1));
    // A number HQ never sent is closed by a revoke, said as "no such
    // order"; a pay that turns up for it afterwards is never sent.
    let late = out_trade_no("T2", "B", 1);
    let a = relay_call(
        &f.hq,
        &t2,
        Call::Revoke {
            out_trade_no: late.clone(),
        },
    )
    .await;
    assert!(
        matches!(a, Answer::Revoke(RevokeAnswer::NotFound(_))),
        "{a:?}"
    );
    let a = relay_call(&f.hq, &t2, pay("T2", "B", late.clone(), 3)).await;
    assert!(
        matches!(&a, Answer::Pay(PayAnswer::Failed { note, .. }) if note.code == "ORDER_CLOSED"),
        "{a:?}"
    );
    assert!(
        f.sim.ledger.order(&late).is_none(),
        "the late pay never reached a gateway"
    );
}
