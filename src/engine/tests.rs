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
    /// Another channel's name and the providers it carries (an acquirer).
    route: Option<(&'static str, &'static [Provider])>,
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
        paid_by: Default::default(),
        transaction_id: "4200000000001".into(),
        paid_at: Some("2026-11-23T10:00:00+08:00".into()),
        amount: None,
    }
}

/// The pay answer of a customer on the password screen (WeChat
/// USERPAYING, Alipay 10003).
fn user_paying(code: &str) -> PayAnswer {
    PayAnswer::Unknown {
        note: note(code),
        user_paying: true,
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
            route: None,
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
    /// A double of the channel `name` carrying `providers`' codes.
    fn channel_named(name: &'static str, providers: &'static [Provider]) -> Arc<Scripted> {
        let mut s = Arc::try_unwrap(Scripted::new(providers[0])).unwrap_or_else(|_| unreachable!());
        s.route = Some((name, providers));
        Arc::new(s)
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
    /// When the first `call` went out (from the first pay request).
    fn first(&self, call: &Sent) -> Option<Duration> {
        self.sent()
            .into_iter()
            .find(|(s, _)| s == call)
            .map(|(_, at)| at)
    }
    /// When each `call` went out.
    fn times(&self, call: &Sent) -> Vec<Duration> {
        self.sent()
            .into_iter()
            .filter(|(s, _)| s == call)
            .map(|(_, at)| at)
            .collect()
    }
    fn count(&self, f: impl Fn(&Sent) -> bool) -> usize {
        self.sent().iter().filter(|(s, _)| f(s)).count()
    }
}

#[async_trait]
impl Gateway for Scripted {
    fn channel(&self) -> &'static str {
        self.route.map_or(self.provider.as_str(), |(n, _)| n)
    }

    fn carries(&self) -> &'static [Provider] {
        self.route.map_or(self.provider.alone(), |(_, p)| p)
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
    till_routed(gateways, &[], dir)
}

/// A till whose `routes` name the channel of the providers they list.
fn till_routed(
    gateways: Vec<Arc<Scripted>>,
    routes: &[(Provider, &str)],
    dir: tempfile::TempDir,
) -> Till {
    let path = dir.path().join("journal.sqlite");
    let journal = Arc::new(Journal::open(&path, "T1").expect("journal"));
    let gws = gateways
        .into_iter()
        .map(|g| g as Arc<dyn Gateway>)
        .collect();
    let routes: Vec<(Provider, String)> = routes.iter().map(|(p, n)| (*p, n.to_string())).collect();
    let engine = Engine::routed(journal, gws, &routes, PaymentConfig::default());
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
        operator_id: None,
        order_no: order.into(),
        amount: 1234,
        subject: Some("2 coffees".into()),
        auth_code: code.map(str::to_string),
    }
}

/// Leaves a journal as if the process died with attempt A1 in `phase`,
/// submitted `ago` before now.
fn crashed_journal(phase: &str, ago: Duration, provider: Provider) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite");
    {
        let j = Journal::open(&path, "T1").expect("journal");
        j.ensure_sale("A1", Fen(500), "x", None).expect("sale");
        let code = if provider == Provider::Wechat {
            WECHAT_CODE
        } else {
            ALIPAY_CODE
        };
        j.begin_attempt("A1", &crate::gateway::recognise(code).expect("code"))
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

/// The next `payment.event` of `kind` (on the paused clock).
async fn payment_event(
    events: &mut tokio::sync::broadcast::Receiver<Notification>,
    kind: &str,
) -> serde_json::Value {
    loop {
        match events.recv().await {
            Ok(Notification::Payment(p)) if p["event"] == kind => return p,
            Ok(_) => continue,
            Err(e) => panic!("no payment.event {kind}: {e}"),
        }
    }
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

mod background;
mod journal_faults;
mod owner;
mod paths;
mod races;
mod refunds;
mod restart;
mod routing;
