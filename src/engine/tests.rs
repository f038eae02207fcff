//! Engine tests against a scripted gateway, on tokio's paused clock.

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::domain::Fen;
use crate::gateway::{
    BillAnswer, GatewayNote, PaidInfo, PayAnswer, PayRequest, QueryAnswer, RefundAnswer,
    RefundRequest, RevokeAnswer, RevokeEffect,
};
use crate::machine;
use crate::pos::rpc::error_code as code;

const WECHAT_CODE: &str = "134567890123456789";
const ALIPAY_CODE: &str = "284567890123456789";

#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Pay(String),
    Query,
    Revoke,
    Refund(String),
    RefundQuery(String),
}

/// A gateway double that answers from scripts and records what it was
/// sent, with the (paused) time since the first pay request.
struct Scripted {
    provider: Provider,
    min_revoke: Duration,
    pay: StdMutex<VecDeque<PayAnswer>>,
    query: StdMutex<VecDeque<QueryAnswer>>,
    revoke: StdMutex<VecDeque<RevokeAnswer>>,
    refund: StdMutex<VecDeque<RefundAnswer>>,
    sent: StdMutex<Vec<(Sent, Duration)>>,
    start: StdMutex<Option<tokio::time::Instant>>,
    query_delay: StdMutex<Duration>,
    pay_delay: StdMutex<Duration>,
    refund_query: StdMutex<VecDeque<RefundAnswer>>,
}

fn note(code: &str) -> GatewayNote {
    GatewayNote::new(code, format!("{code} text"))
}

fn paid_info() -> PaidInfo {
    PaidInfo {
        transaction_id: "4200000000001".into(),
        paid_at: Some("2026-11-23T10:00:00+08:00".into()),
        amount: None,
    }
}

fn pending() -> QueryAnswer {
    QueryAnswer::Pending {
        note: note("USERPAYING"),
        user_paying: true,
    }
}

impl Scripted {
    fn new(provider: Provider) -> Arc<Scripted> {
        Arc::new(Scripted {
            provider,
            min_revoke: if provider == Provider::Wechat {
                Duration::from_secs(15)
            } else {
                Duration::ZERO
            },
            pay: StdMutex::default(),
            query: StdMutex::default(),
            revoke: StdMutex::default(),
            refund: StdMutex::default(),
            sent: StdMutex::default(),
            start: StdMutex::default(),
            query_delay: StdMutex::default(),
            pay_delay: StdMutex::default(),
            refund_query: StdMutex::default(),
        })
    }
    fn pays(self: &Arc<Self>, a: PayAnswer) -> Arc<Self> {
        self.pay.lock().expect("lock").push_back(a);
        self.clone()
    }
    fn queries(self: &Arc<Self>, a: impl IntoIterator<Item = QueryAnswer>) -> Arc<Self> {
        self.query.lock().expect("lock").extend(a);
        self.clone()
    }
    fn revokes(self: &Arc<Self>, a: impl IntoIterator<Item = RevokeAnswer>) -> Arc<Self> {
        self.revoke.lock().expect("lock").extend(a);
        self.clone()
    }
    fn log(&self, s: Sent) {
        let now = tokio::time::Instant::now();
        let mut start = self.start.lock().expect("lock");
        let t0 = *start.get_or_insert(now);
        self.sent.lock().expect("lock").push((s, now - t0));
    }
    fn sent(&self) -> Vec<(Sent, Duration)> {
        self.sent.lock().expect("lock").clone()
    }
    fn count(&self, f: impl Fn(&Sent) -> bool) -> usize {
        self.sent().iter().filter(|(s, _)| f(s)).count()
    }
}

#[async_trait]
impl Gateway for Scripted {
    fn provider(&self) -> Provider {
        self.provider
    }
    fn min_revoke_delay(&self) -> Duration {
        self.min_revoke
    }
    async fn pay(&self, req: &PayRequest) -> PayAnswer {
        self.log(Sent::Pay(req.out_trade_no.clone()));
        let delay = *self.pay_delay.lock().expect("lock");
        tokio::time::sleep(delay).await;
        self.pay
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(PayAnswer::Paid(paid_info()))
    }
    async fn query(&self, _: &str) -> QueryAnswer {
        self.log(Sent::Query);
        let delay = *self.query_delay.lock().expect("lock");
        tokio::time::sleep(delay).await;
        self.query
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or_else(pending)
    }
    async fn revoke(&self, _: &str) -> RevokeAnswer {
        self.log(Sent::Revoke);
        self.revoke
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(RevokeAnswer::Revoked(RevokeEffect::Closed))
    }
    async fn refund(&self, req: &RefundRequest) -> RefundAnswer {
        self.log(Sent::Refund(req.refund_no.clone()));
        self.refund
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(RefundAnswer::Refunded {
                refund_id: Some("R1".into()),
            })
    }
    async fn refund_query(&self, _: &str, refund_no: &str) -> RefundAnswer {
        self.log(Sent::RefundQuery(refund_no.to_string()));
        self.refund_query
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(RefundAnswer::Refunded {
                refund_id: Some("R1".into()),
            })
    }
    async fn bill(&self, _: &str) -> BillAnswer {
        BillAnswer::NoBill(note("none"))
    }
}

struct Till {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    engine: Arc<Engine>,
}

fn till_with(gateways: Vec<Arc<Scripted>>, dir: tempfile::TempDir) -> Till {
    let path = dir.path().join("journal.sqlite");
    let journal = Arc::new(Journal::open(&path, "T1").expect("journal"));
    let gws = gateways
        .into_iter()
        .map(|g| g as Arc<dyn Gateway>)
        .collect();
    let engine = Engine::new(journal, gws, PaymentConfig::default());
    Till {
        _dir: dir,
        path,
        engine,
    }
}

fn till(gw: &Arc<Scripted>) -> Till {
    till_with(vec![gw.clone()], tempfile::tempdir().expect("tempdir"))
}

/// Charges `order` with a typed-in code and waits for the final Payment.
async fn charged(t: &Till, order: &str, code: &str) -> Payment {
    t.engine
        .charge(charge(order, Some(code)))
        .await
        .expect("charge")
}

/// Starts a charge in its own task (it answers only once final).
fn spawn_charge(
    t: &Till,
    order: &str,
    code: Option<&str>,
) -> tokio::task::JoinHandle<Result<Payment, EngineError>> {
    let (engine, req) = (t.engine.clone(), charge(order, code));
    tokio::spawn(async move { engine.charge(req).await })
}

/// Waits until a charge is armed for the scanner.
async fn wait_armed(t: &Till) {
    while t.engine.counts().await.0.is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn charge(order: &str, code: Option<&str>) -> ChargeRequest {
    ChargeRequest {
        order_no: order.into(),
        amount: 1234,
        subject: Some("2 coffees".into()),
        auth_code: code.map(str::to_string),
    }
}

#[tokio::test(start_paused = true)]
async fn paid_at_once() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(p.transaction_id.as_deref(), Some("4200000000001"));
    assert_eq!(p.out_trade_no.as_deref(), Some("T1_A1_1"));
    assert_eq!(p.provider, Some(Provider::Wechat));
    assert_eq!(gw.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn customer_confirms_after_two_polls() {
    let gw = Scripted::new(Provider::Alipay)
        .pays(PayAnswer::Unknown {
            note: note("10003"),
            user_paying: true,
        })
        .queries([pending(), QueryAnswer::Paid(paid_info())]);
    let t = till(&gw);
    let mut events = t.engine.subscribe();
    let p = charged(&t, "A1", ALIPAY_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    let sent = gw.sent();
    assert_eq!(
        sent.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        vec![Sent::Pay("T1_A1_1".into()), Sent::Query, Sent::Query]
    );
    assert_eq!(
        sent[1].1,
        Duration::from_secs(5),
        "first poll after poll_interval"
    );
    assert_eq!(sent[2].1, Duration::from_secs(10));
    let mut seen = Vec::new();
    while let Ok(n) = events.try_recv() {
        seen.push(n.params()["event"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(seen, ["submitted", "user_paying", "user_paying", "paid"]);
}

#[tokio::test(start_paused = true)]
async fn never_confirms_is_revoked_at_the_deadline() {
    let gw = Scripted::new(Provider::Alipay).pays(PayAnswer::Unknown {
        note: note("10003"),
        user_paying: true,
    });
    let t = till(&gw);
    let p = charged(&t, "A1", ALIPAY_CODE).await;
    assert_eq!(p.status, PaymentStatus::Revoked);
    let sent = gw.sent();
    let (last, at) = sent.last().expect("calls");
    assert_eq!(*last, Sent::Revoke);
    assert_eq!(*at, Duration::from_secs(30));
    assert_eq!(gw.count(|s| *s == Sent::Query), 6);
}

#[tokio::test(start_paused = true)]
async fn revoke_that_keeps_asking_to_retry_needs_attention() {
    let retry = || RevokeAnswer::Retry(note("SYSTEMERROR"));
    let gw = Scripted::new(Provider::Wechat)
        .pays(PayAnswer::Unknown {
            note: note("USERPAYING"),
            user_paying: true,
        })
        .revokes((0..10).map(|_| retry()));
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention);
    assert_eq!(gw.count(|s| *s == Sent::Revoke), 5, "revoke_max_attempts");
    let attention = t.engine.journal().attention().expect("attention");
    assert_eq!(attention.len(), 1);
    assert_eq!(attention[0].state.revoke_tries, 5);
    // Nothing retries it silently afterwards.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(gw.count(|s| *s == Sent::Revoke), 5);
}

#[tokio::test(start_paused = true)]
async fn unknown_pay_answer_then_query_paid_is_paid() {
    let gw = Scripted::new(Provider::Wechat)
        .pays(PayAnswer::Unknown {
            note: note("SYSTEMERROR"),
            user_paying: false,
        })
        .queries([QueryAnswer::Paid(paid_info())]);
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(gw.count(|s| *s == Sent::Revoke), 0);
}

#[tokio::test(start_paused = true)]
async fn definite_failure_is_failed_with_the_gateway_code_and_a_new_attempt_may_follow() {
    let gw = Scripted::new(Provider::Wechat).pays(PayAnswer::Failed {
        note: note("NOTENOUGH"),
        config_error: false,
    });
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Failed);
    assert_eq!(p.error.as_ref().map(|e| e.code.as_str()), Some("NOTENOUGH"));
    let p = t
        .engine
        .charge(charge("A1", Some("104567890123456789")))
        .await
        .expect("charge");
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(p.out_trade_no.as_deref(), Some("T1_A1_2"));
}

#[tokio::test(start_paused = true)]
async fn cancel_before_any_scan_is_cancelled() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let pending_charge = spawn_charge(&t, "A1", None);
    tokio::task::yield_now().await;
    wait_armed(&t).await;
    assert_eq!(
        t.engine.payment("A1").await.expect("p").status,
        PaymentStatus::WaitingScan
    );
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Cancelled);
    let p = pending_charge.await.expect("join").expect("charge");
    assert_eq!(p.status, PaymentStatus::Cancelled);
    assert!(gw.sent().is_empty());
    assert!(matches!(
        t.engine
            .scan(AuthCode::parse(WECHAT_CODE).expect("code"))
            .await,
        ScanOutcome::Ignored(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_scan_reaches_the_waiting_charge_and_a_second_charge_is_busy() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let pending_charge = spawn_charge(&t, "A1", None);
    wait_armed(&t).await;
    let busy = t.engine.charge(charge("B2", None)).await;
    assert_eq!(busy.map_err(|e| code(&e)), Err(1001));
    let out = t
        .engine
        .scan(AuthCode::parse(WECHAT_CODE).expect("code"))
        .await;
    assert_eq!(
        out,
        ScanOutcome::Taken {
            order_no: "A1".into()
        }
    );
    let p = pending_charge.await.expect("join").expect("charge");
    assert_eq!(p.status, PaymentStatus::Paid);
}

#[tokio::test(start_paused = true)]
async fn wechat_cancel_at_3s_waits_until_15s_before_revoking() {
    let gw = Scripted::new(Provider::Wechat).pays(PayAnswer::Unknown {
        note: note("USERPAYING"),
        user_paying: true,
    });
    let t = till(&gw);
    let pending_charge = spawn_charge(&t, "A1", Some(WECHAT_CODE));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Revoked);
    let revoke_at = gw
        .sent()
        .iter()
        .find(|(s, _)| *s == Sent::Revoke)
        .map(|(_, at)| *at);
    assert_eq!(revoke_at, Some(Duration::from_secs(15)));
    assert!(gw.count(|s| *s == Sent::Query) >= 2, "polls meanwhile");
    assert_eq!(
        pending_charge.await.expect("join").expect("charge").status,
        PaymentStatus::Revoked
    );
}

#[tokio::test(start_paused = true)]
async fn alipay_cancel_while_paying_revokes_at_once() {
    let gw = Scripted::new(Provider::Alipay).pays(PayAnswer::Unknown {
        note: note("10003"),
        user_paying: true,
    });
    let t = till(&gw);
    let _charge = spawn_charge(&t, "A1", Some(ALIPAY_CODE));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Revoked);
    let revoke_at = gw
        .sent()
        .iter()
        .find(|(s, _)| *s == Sent::Revoke)
        .map(|(_, at)| *at);
    assert_eq!(revoke_at, Some(Duration::from_secs(3)));
}

#[tokio::test(start_paused = true)]
async fn a_paid_order_is_never_charged_again() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(WECHAT_CODE)))
        .await
        .expect("charge");
    let again = t
        .engine
        .charge(charge("A1", Some("104567890123456789")))
        .await
        .expect("charge");
    assert_eq!(again.status, PaymentStatus::Paid);
    assert_eq!(again.out_trade_no.as_deref(), Some("T1_A1_1"));
    assert_eq!(gw.count(|s| matches!(s, Sent::Pay(_))), 1);
    let other_amount = ChargeRequest {
        amount: 99,
        ..charge("A1", None)
    };
    assert_eq!(
        t.engine.charge(other_amount).await.map_err(|e| code(&e)),
        Err(1002)
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_code_for_a_sale_in_flight_is_an_order_conflict() {
    let gw = Scripted::new(Provider::Wechat).pays(PayAnswer::Unknown {
        note: note("USERPAYING"),
        user_paying: true,
    });
    let t = till(&gw);
    let _charge = spawn_charge(&t, "A1", Some(WECHAT_CODE));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = t
        .engine
        .charge(charge("A1", Some("104567890123456789")))
        .await;
    assert_eq!(second.map_err(|e| code(&e)), Err(1002));
    assert_eq!(gw.count(|s| matches!(s, Sent::Pay(_))), 1);
}

#[tokio::test(start_paused = true)]
async fn a_code_of_an_unconfigured_provider_is_refused() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let r = t.engine.charge(charge("A1", Some(ALIPAY_CODE))).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(1003));
    let r = t.engine.charge(charge("A1", Some("6901234567892"))).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(-32602));
}

#[tokio::test(start_paused = true)]
async fn refunds_are_bounded_and_idempotent() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(WECHAT_CODE)))
        .await
        .expect("charge");
    let r = t
        .engine
        .refund("A1", "R1", 1000, None)
        .await
        .expect("refund");
    assert_eq!(r.status, "refunded");
    let again = t
        .engine
        .refund("A1", "R1", 1000, None)
        .await
        .expect("same refund");
    assert_eq!(again.status, "refunded");
    assert_eq!(
        gw.count(|s| matches!(s, Sent::Refund(_))),
        1,
        "a retry with the same refund_no sends nothing"
    );
    let too_much = t.engine.refund("A1", "R2", 235, None).await;
    assert_eq!(too_much.map_err(|e| code(&e)), Err(1006));
    let p = t.engine.payment("A1").await.expect("payment");
    assert_eq!(p.refunded_amount, 1000);
    // The gateway refuses one: 1006 with its reason, and the same again.
    gw.refund
        .lock()
        .expect("lock")
        .push_back(RefundAnswer::Failed(note("NOTENOUGH")));
    for _ in 0..2 {
        let e = t
            .engine
            .refund("A1", "R3", 100, None)
            .await
            .expect_err("refused");
        assert_eq!(code(&e), 1006);
        assert!(e.to_string().contains("NOTENOUGH"), "{e}");
    }
    assert_eq!(gw.count(|s| matches!(s, Sent::Refund(_))), 2);
    let p = t.engine.payment("A1").await.expect("payment");
    assert_eq!(p.refunded_amount, 1000, "a refused refund moved nothing");
}

#[tokio::test(start_paused = true)]
async fn a_revoked_attempt_is_never_refunded() {
    let gw = Scripted::new(Provider::Alipay).pays(PayAnswer::Unknown {
        note: note("10003"),
        user_paying: true,
    });
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(ALIPAY_CODE)))
        .await
        .expect("charge");
    let r = t.engine.refund("A1", "R1", 100, None).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(1006));
}

#[tokio::test]
async fn the_journal_never_holds_a_full_auth_code() {
    let gw = Scripted::new(Provider::Wechat);
    let alipay = Scripted::new(Provider::Alipay).pays(PayAnswer::Failed {
        note: note("ACQ.PAYMENT_AUTH_CODE_INVALID"),
        config_error: false,
    });
    let t = till_with(vec![gw, alipay], tempfile::tempdir().expect("tempdir"));
    let codes = [
        "134567890123456789",
        "284567890123456789",
        "104567890123450000",
    ];
    for (i, code) in codes.iter().enumerate() {
        t.engine
            .charge(charge(&format!("S{i}"), Some(code)))
            .await
            .expect("charge");
    }
    let mut bytes = std::fs::read(&t.path).expect("db");
    if let Ok(wal) = std::fs::read(t.path.with_extension("sqlite-wal")) {
        bytes.extend(wal);
    }
    assert!(bytes.len() > 4096);
    for code in codes {
        let needle = code.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "full code found in the journal"
        );
        let masked = AuthCode::parse(code).expect("code").masked();
        assert!(
            bytes.windows(masked.len()).any(|w| w == masked.as_bytes()),
            "masked code kept"
        );
    }
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_refuses_the_charge_and_sends_nothing() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    // Another process holds the write lock past the busy timeout.
    let other = rusqlite::Connection::open(&t.path).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let r = t.engine.charge(charge("A1", Some(WECHAT_CODE))).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(1004));
    assert!(gw.sent().is_empty(), "nothing reached the gateway");
    other.execute_batch("ROLLBACK").expect("unlock");
    // Fail-stop: even with the lock gone, no new charges until restart.
    let r = t.engine.charge(charge("A2", Some(WECHAT_CODE))).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(1004));
    assert!(gw.sent().is_empty());
}

#[tokio::test]
async fn a_journal_failing_mid_payment_says_unresolved_never_nothing_sent() {
    // The code has left when the journal stops taking writes: the POS must
    // not hear 1004 ("nothing was sent") and take another payment.
    let gw = Scripted::new(Provider::Wechat);
    *gw.pay_delay.lock().expect("lock") = Duration::from_millis(300);
    let t = till(&gw);
    let charge = spawn_charge(&t, "A1", Some(WECHAT_CODE));
    while gw.sent().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let other = rusqlite::Connection::open(&t.path).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let r = charge.await.expect("join");
    other.execute_batch("ROLLBACK").expect("unlock");
    let e = r.expect_err("not settled");
    assert_eq!(code(&e), 1007, "{e}");
    assert!(e.to_string().contains("NOT settled"), "{e}");
    // The journal still has it in flight, for recovery on restart.
    let (_, attempts) = t.engine.journal().sale("A1").expect("read").expect("sale");
    assert_eq!(attempts[0].state.phase, machine::Phase::Submitting);
}

// ---- recovery (payment-rules.md §15) -------------------------------------------------

/// Leaves a journal as if the process died with attempt A1 in `phase`,
/// submitted `ago` before now.
fn crashed_journal(phase: &str, ago: Duration, provider: Provider) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite");
    {
        let j = Journal::open(&path, "T1").expect("journal");
        j.ensure_sale("A1", Fen(500), "x").expect("sale");
        let code = if provider == Provider::Wechat {
            WECHAT_CODE
        } else {
            ALIPAY_CODE
        };
        j.begin_attempt("A1", &AuthCode::parse(code).expect("code"))
            .expect("attempt");
    }
    let conn = rusqlite::Connection::open(&path).expect("open");
    let at = crate::journal::now_ms() - ago.as_millis() as i64;
    conn.execute(
        "UPDATE attempts SET phase = ?1, submitted_at = ?2",
        rusqlite::params![phase, at],
    )
    .expect("crash state");
    dir
}

async fn recover_and_wait(t: &Till) -> Payment {
    assert_eq!(t.engine.recover().await.expect("recover"), 1);
    final_payment(t, "A1").await
}

/// Waits (on the paused clock) until the order's Payment is final.
async fn final_payment(t: &Till, order: &str) -> Payment {
    for _ in 0..10_000 {
        let p = t.engine.payment(order).await.expect("payment");
        if p.status.is_final() {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{order} never became final")
}

#[tokio::test(start_paused = true)]
async fn recovery_of_a_submitting_attempt_queries_and_finds_it_paid() {
    let gw = Scripted::new(Provider::Wechat).queries([QueryAnswer::Paid(paid_info())]);
    let t = till_with(
        vec![gw.clone()],
        crashed_journal("submitting", Duration::from_secs(2), Provider::Wechat),
    );
    let p = recover_and_wait(&t).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(
        gw.sent().first().map(|s| s.0.clone()),
        Some(Sent::Query),
        "never resubmits the pay"
    );
    assert_eq!(gw.count(|s| matches!(s, Sent::Pay(_))), 0);
}

#[tokio::test(start_paused = true)]
async fn recovery_of_a_paying_attempt_polls_to_the_original_deadline() {
    let gw = Scripted::new(Provider::Alipay);
    let t = till_with(
        vec![gw.clone()],
        crashed_journal("paying", Duration::from_secs(20), Provider::Alipay),
    );
    let p = recover_and_wait(&t).await;
    assert_eq!(p.status, PaymentStatus::Revoked);
    let revoke_at = gw
        .sent()
        .iter()
        .find(|(s, _)| *s == Sent::Revoke)
        .map(|(_, at)| *at);
    let revoke_at = revoke_at.expect("revoked");
    assert!(
        revoke_at <= Duration::from_secs(11),
        "deadline counted from submission: {revoke_at:?}"
    );
    assert!(revoke_at >= Duration::from_secs(9), "{revoke_at:?}");
}

#[tokio::test(start_paused = true)]
async fn recovery_past_the_deadline_asks_first_then_revokes_what_is_unpaid() {
    for phase in ["submitting", "paying", "revoking"] {
        let gw = Scripted::new(Provider::Wechat)
            .revokes([RevokeAnswer::Revoked(RevokeEffect::Refunded)]);
        let t = till_with(
            vec![gw.clone()],
            crashed_journal(phase, Duration::from_secs(3600), Provider::Wechat),
        );
        let p = recover_and_wait(&t).await;
        assert_eq!(p.status, PaymentStatus::Revoked, "{phase}");
        assert_eq!(
            gw.sent().iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
            vec![Sent::Query, Sent::Revoke],
            "{phase}: asked first, and the customer is still confirming"
        );
        let (_, attempts) = t.engine.journal().sale("A1").expect("read").expect("sale");
        assert_eq!(attempts[0].revoke_effect, Some(RevokeEffect::Refunded));
    }
}

#[tokio::test(start_paused = true)]
async fn a_payment_that_succeeded_while_the_till_was_down_is_paid_even_past_the_deadline() {
    // The success answer was on its way when the till died; it restarts
    // an hour later. The query finds the payment: paid, nothing revoked.
    for phase in ["submitting", "paying"] {
        let gw = Scripted::new(Provider::Wechat).queries([QueryAnswer::Paid(paid_info())]);
        let t = till_with(
            vec![gw.clone()],
            crashed_journal(phase, Duration::from_secs(3600), Provider::Wechat),
        );
        let p = recover_and_wait(&t).await;
        assert_eq!(p.status, PaymentStatus::Paid, "{phase}");
        assert_eq!(p.transaction_id.as_deref(), Some("4200000000001"));
        assert_eq!(
            gw.count(|s| *s == Sent::Revoke),
            0,
            "{phase}: the money is kept"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn recovery_without_the_provider_needs_attention() {
    let gw = Scripted::new(Provider::Alipay);
    let t = till_with(
        vec![gw],
        crashed_journal("paying", Duration::from_secs(5), Provider::Wechat),
    );
    t.engine.recover().await.expect("recover");
    assert_eq!(
        t.engine.payment("A1").await.expect("p").status,
        PaymentStatus::NeedsAttention
    );
}

#[tokio::test(start_paused = true)]
async fn recovery_cancels_a_sale_left_waiting_for_a_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let j = Journal::open(&dir.path().join("journal.sqlite"), "T1").expect("journal");
        j.ensure_sale("W1", Fen(500), "x").expect("sale");
    }
    let t = till_with(vec![Scripted::new(Provider::Wechat)], dir);
    assert_eq!(t.engine.recover().await.expect("recover"), 0);
    assert_eq!(
        t.engine.payment("W1").await.expect("p").status,
        PaymentStatus::Cancelled
    );
}

// ---- races and hostile input (second reading) ------------------------------

#[tokio::test(start_paused = true)]
async fn a_cancel_during_an_in_flight_query_still_revokes() {
    let gw = Scripted::new(Provider::Alipay).pays(PayAnswer::Unknown {
        note: note("10003"),
        user_paying: true,
    });
    *gw.query_delay.lock().expect("lock") = Duration::from_secs(2);
    let t = till(&gw);
    let charge_task = spawn_charge(&t, "A1", Some(ALIPAY_CODE));
    // The first query goes out at 5 s and answers at 7 s: cancel at 6 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(
        p.status,
        PaymentStatus::Revoked,
        "cancel answers once final"
    );
    assert_eq!(gw.count(|s| *s == Sent::Revoke), 1);
    assert_eq!(
        charge_task.await.expect("join").expect("charge").status,
        PaymentStatus::Revoked
    );
}

#[tokio::test]
async fn a_cancel_racing_the_start_of_an_attempt_never_hides_a_payment() {
    for i in 0..20u32 {
        let gw = Scripted::new(Provider::Alipay);
        let t = till(&gw);
        let order = format!("R{i}");
        let charge_task = spawn_charge(&t, &order, Some(ALIPAY_CODE));
        for _ in 0..i {
            tokio::task::yield_now().await;
        }
        let cancelled = t.engine.cancel(&order).await;
        let charged = charge_task.await.expect("join");
        let paid_at_gateway = gw.count(|s| matches!(s, Sent::Pay(_))) == 1;
        let revoked = gw.count(|s| *s == Sent::Revoke) == 1;
        let status = charged
            .map(|p| p.status)
            .or_else(|_| cancelled.clone().map(|p| p.status));
        match status {
            Ok(PaymentStatus::Cancelled) => {
                assert!(!paid_at_gateway, "{i}: cancelled, yet a pay was sent")
            }
            Ok(PaymentStatus::Revoked) => assert!(revoked, "{i}"),
            // The cancel came after the sale was paid: it stays paid.
            Ok(PaymentStatus::Paid) => assert!(paid_at_gateway && !revoked, "{i}"),
            other => panic!("{i}: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_sale_charged_again_shows_waiting_scan_then_cancelled() {
    let gw = Scripted::new(Provider::Wechat).pays(PayAnswer::Failed {
        note: note("NOTENOUGH"),
        config_error: false,
    });
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(WECHAT_CODE)))
        .await
        .expect("charge");
    let again = spawn_charge(&t, "A1", None);
    wait_armed(&t).await;
    assert_eq!(
        t.engine.payment("A1").await.expect("p").status,
        PaymentStatus::WaitingScan
    );
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Cancelled);
    assert_eq!(p.error, None);
    assert_eq!(
        again.await.expect("join").expect("charge").status,
        PaymentStatus::Cancelled
    );
}

#[tokio::test(start_paused = true)]
async fn hostile_refunds_are_rejected_without_stopping_the_till() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(WECHAT_CODE)))
        .await
        .expect("charge");
    t.engine
        .refund("A1", "R1", 100, None)
        .await
        .expect("refund");
    let huge = t.engine.refund("A1", "R2", u64::MAX - 50, None).await;
    assert_eq!(huge.map_err(|e| code(&e)), Err(1006));
    assert!(
        t.engine.journal_ok(),
        "a bad request is not a journal failure"
    );
    let p = t
        .engine
        .charge(charge("B1", Some("104567890123456789")))
        .await
        .expect("charges go on");
    assert_eq!(p.status, PaymentStatus::Paid);
}

#[tokio::test(start_paused = true)]
async fn a_refund_not_found_after_an_unknown_answer_is_sent_again_under_its_number() {
    let gw = Scripted::new(Provider::Alipay);
    gw.refund
        .lock()
        .expect("lock")
        .push_back(RefundAnswer::Unknown(note("TIMEOUT")));
    gw.refund_query
        .lock()
        .expect("lock")
        .push_back(RefundAnswer::NotFound(note("ACQ.TRADE_NOT_EXIST")));
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(ALIPAY_CODE)))
        .await
        .expect("charge");
    let mut events = t.engine.subscribe();
    let r = t
        .engine
        .refund("A1", "R1", 100, None)
        .await
        .expect("refund");
    assert_eq!(r.status, "processing", "unknown is not failed: {r:?}");
    // The daemon asks, finds nothing, and sends the same refund again.
    let ended = refund_event(&mut events).await;
    assert_eq!(ended["status"], "refunded");
    assert_eq!(ended["refund_no"], "R1");
    let sent: Vec<_> = gw
        .sent()
        .into_iter()
        .filter_map(|(s, _)| match s {
            Sent::Refund(no) => Some(no),
            _ => None,
        })
        .collect();
    assert_eq!(sent, ["T1_RR1", "T1_RR1"], "the same number both times");
    let p = t.engine.payment("A1").await.expect("p");
    assert_eq!(p.refunded_amount, 100, "refunded once");
}

/// The next `refund.event` (on the paused clock, however long it takes).
async fn refund_event(
    events: &mut tokio::sync::broadcast::Receiver<Notification>,
) -> serde_json::Value {
    loop {
        match events.recv().await {
            Ok(Notification::Refund(p)) => return p,
            Ok(_) => continue,
            Err(e) => panic!("no refund.event: {e}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_code_used_before_is_never_sent_again() {
    // Payment codes are single-use at both gateways: a code already given to
    // an attempt (here: paid for A1) is refused for any other sale.
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);

    // Typed in by hand: an invalid-params error naming auth_code.
    let typed = t.engine.charge(charge("B2", Some(WECHAT_CODE))).await;
    let Err(e) = typed else {
        panic!("a used code was accepted: {typed:?}")
    };
    assert_eq!(code(&e), -32602);
    assert!(
        e.to_string().contains("auth_code") && e.to_string().contains("A1"),
        "{e}"
    );
    assert!(!e.to_string().contains(WECHAT_CODE), "{e}");

    // Scanned: ignored with the reason, and the charge keeps waiting for a
    // fresh code.
    let waiting = spawn_charge(&t, "C3", None);
    wait_armed(&t).await;
    let again = t
        .engine
        .scan(AuthCode::parse(WECHAT_CODE).expect("code"))
        .await;
    let ScanOutcome::Ignored(why) = again else {
        panic!("a used code was taken: {again:?}")
    };
    assert!(why.contains("already used") && why.contains("A1"), "{why}");
    assert_eq!(t.engine.counts().await.0.as_deref(), Some("C3"));
    let fresh = t
        .engine
        .scan(AuthCode::parse("134567890123450000").expect("code"))
        .await;
    assert_eq!(
        fresh,
        ScanOutcome::Taken {
            order_no: "C3".into()
        }
    );
    let p = waiting.await.expect("join").expect("charge");
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(
        gw.count(|s| matches!(s, Sent::Pay(_))),
        2,
        "the used code was sent once only"
    );
}

#[tokio::test(start_paused = true)]
async fn a_payment_of_another_amount_needs_an_operator_and_the_pos_is_told_why() {
    let gw = Scripted::new(Provider::Alipay).pays(PayAnswer::Paid(PaidInfo {
        amount: Some(Fen(1)),
        ..paid_info()
    }));
    let t = till(&gw);
    let p = charged(&t, "A1", ALIPAY_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention, "{p:?}");
    let error = p.error.expect("an error says why");
    assert_eq!(error.code, "AMOUNT_MISMATCH");
    assert_eq!(
        p.transaction_id.as_deref(),
        Some("4200000000001"),
        "kept for the operator"
    );
    let (_, attempts) = t.engine.journal().sale("A1").expect("read").expect("sale");
    assert_eq!(attempts[0].booked, Some(Fen(1)), "kept for reconciliation");
    assert_eq!(
        gw.sent().iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        vec![Sent::Pay("T1_A1_1".into())],
        "nothing revoked: it may be another sale's payment"
    );
    // The same amount is simply paid.
    let gw = Scripted::new(Provider::Alipay).pays(PayAnswer::Paid(PaidInfo {
        amount: Some(Fen(1234)),
        ..paid_info()
    }));
    let t = till(&gw);
    assert_eq!(
        charged(&t, "A1", ALIPAY_CODE).await.status,
        PaymentStatus::Paid
    );
}

#[tokio::test(start_paused = true)]
async fn resending_the_charge_of_a_paid_sale_with_its_code_answers_paid() {
    // The POS lost the answer and sends the very same request again.
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    assert_eq!(
        charged(&t, "A1", WECHAT_CODE).await.status,
        PaymentStatus::Paid
    );
    let again = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(again.status, PaymentStatus::Paid);
    assert_eq!(again.out_trade_no.as_deref(), Some("T1_A1_1"));
    assert_eq!(gw.count(|s| matches!(s, Sent::Pay(_))), 1, "charged once");
}

#[tokio::test(start_paused = true)]
async fn a_code_whose_pay_request_never_left_is_still_good() {
    // Connection refused: the gateway never saw the code, so the cashier's
    // retry with the same code goes through.
    let gw = Scripted::new(Provider::Wechat).pays(PayAnswer::NotSent(note("NOT_SENT")));
    let t = till(&gw);
    assert_eq!(
        charged(&t, "A1", WECHAT_CODE).await.status,
        PaymentStatus::Failed
    );
    let retry = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(retry.status, PaymentStatus::Paid);
    assert_eq!(retry.out_trade_no.as_deref(), Some("T1_A1_2"));
}

#[tokio::test(start_paused = true)]
async fn a_charge_armed_before_a_journal_failure_sends_nothing() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let waiting = spawn_charge(&t, "B1", None);
    wait_armed(&t).await;
    // Another attempt's journal write failed meanwhile: fail-stop.
    t.engine
        .fail_stop(&JournalError::Internal("disk I/O error".into()));
    let _ = t
        .engine
        .scan(AuthCode::parse(WECHAT_CODE).expect("code"))
        .await;
    let r = waiting.await.expect("join");
    assert_eq!(r.map_err(|e| code(&e)), Err(1004));
    assert!(gw.sent().is_empty(), "nothing reached the gateway");
}

#[tokio::test(start_paused = true)]
async fn an_order_number_paid_long_before_this_attempt_is_another_sales() {
    // "Already paid" to a first and only pay request: the query shows an
    // old payment of the same amount under this out_trade_no (a till id
    // shared by two tills, a replaced journal). Not this sale's money.
    // One pay request answered ORDERPAID, then a query showing a payment
    // of the sale's amount made at `paid_at`.
    let sale = |paid_at: String| {
        let gw = Scripted::new(Provider::Wechat)
            .pays(PayAnswer::Unknown {
                note: note("ORDERPAID"),
                user_paying: false,
            })
            .queries([QueryAnswer::Paid(PaidInfo {
                paid_at: Some(paid_at),
                amount: Some(Fen(1234)),
                ..paid_info()
            })]);
        let t = till(&gw);
        (gw, t)
    };
    let (gw, t) = sale("2025-01-02T10:00:00+08:00".into());
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention, "{p:?}");
    assert_eq!(
        p.error.map(|e| e.code).as_deref(),
        Some("OUT_TRADE_NO_COLLISION")
    );
    assert_eq!(
        gw.count(|s| *s == Sent::Revoke),
        0,
        "the old sale is left alone"
    );
    // The same "already paid" with a payment made just now is followed.
    let (_, t) = sale(chrono::Local::now().to_rfc3339());
    assert_eq!(
        charged(&t, "A1", WECHAT_CODE).await.status,
        PaymentStatus::Paid
    );
}

mod owner;
