//! Shared test harness: an in-process till (journal + engine + POS socket)
//! whose gateways answer from the simulator's ledger, so customer
//! behaviours chosen by the code apply. The POS connection is in
//! [`conn`], which the tests of the real binary use alone.

mod conn;
pub use conn::Conn;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use tillpay::config::PaymentConfig;
use tillpay::domain::Provider;
use tillpay::engine::Engine;
use tillpay::gateway::*;
use tillpay::journal::Journal;
use tillpay::pos::rpc::Context;
use tillpay::pos::server::{self, Server};
use tillpay::sim::ledger::{Ledger, OrderState, PayOutcome, RefundOutcome, RevokeOutcome};

/// A gateway double over the simulator's ledger (no HTTP, no signatures:
/// for tests of the engine and the socket, not of the gateway clients).
pub struct LedgerGateway {
    pub provider: Provider,
    pub ledger: Arc<Ledger>,
}

fn note(code: &str) -> GatewayNote {
    GatewayNote::new(code, code.to_lowercase())
}

fn paid(o: &tillpay::sim::ledger::Order) -> PaidInfo {
    PaidInfo {
        paid_by: tillpay::gateway::PaidBy::from_customer_paid(
            Some(o.amount),
            Some(o.customer_paid()),
            Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ),
        transaction_id: o.transaction_id.clone(),
        paid_at: o.paid_at.map(|t| t.to_rfc3339()),
        amount: Some(o.amount),
    }
}

#[async_trait]
impl Gateway for LedgerGateway {
    fn channel(&self) -> &'static str {
        (self.provider).as_str()
    }

    fn carries(&self) -> &'static [Provider] {
        (self.provider).alone()
    }
    async fn pay(&self, req: &PayRequest) -> PayAnswer {
        let out = self.ledger.pay(
            self.provider,
            &req.out_trade_no,
            req.amount,
            req.auth_code.expose(),
            "T1",
            &req.subject,
        );
        match out {
            PayOutcome::Paid(o) | PayOutcome::Late(o, _) => PayAnswer::Paid(paid(&o)),
            PayOutcome::UserPaying(_) => PayAnswer::Unknown {
                note: note("USERPAYING"),
                user_paying: true,
            },
            PayOutcome::InsufficientFunds => PayAnswer::Failed {
                note: note("NOTENOUGH"),
                config_error: false,
            },
            PayOutcome::CodeExpired | PayOutcome::CodeUsed => PayAnswer::Failed {
                note: note("AUTHCODEEXPIRE"),
                config_error: false,
            },
            PayOutcome::SystemError(_)
            | PayOutcome::BankError(_)
            | PayOutcome::BadGateway(_)
            | PayOutcome::SystemBusy(_)
            | PayOutcome::AnswerLost(_)
            | PayOutcome::Existing { .. } => PayAnswer::Unknown {
                note: note("SYSTEMERROR"),
                user_paying: false,
            },
        }
    }
    async fn query(&self, out_trade_no: &str) -> QueryAnswer {
        match self.ledger.order(out_trade_no).map(|o| (o.state, o)) {
            Some((OrderState::Paid, o)) => QueryAnswer::Paid(paid(&o)),
            Some((OrderState::Open, _)) | None => QueryAnswer::Pending {
                note: note("USERPAYING"),
                user_paying: true,
            },
            Some((OrderState::Failed, _)) => QueryAnswer::PayError(note("PAYERROR")),
            Some((OrderState::Revoked(_), _)) => QueryAnswer::NotPaid(note("REVOKED")),
        }
    }
    async fn revoke(&self, out_trade_no: &str) -> RevokeAnswer {
        match self.ledger.revoke(self.provider, out_trade_no, None) {
            RevokeOutcome::Done(e) => RevokeAnswer::Revoked(e),
            RevokeOutcome::Retry | RevokeOutcome::UserPaying => {
                RevokeAnswer::Retry(note("SYSTEMERROR"))
            }
            RevokeOutcome::Refused(r) => RevokeAnswer::Refused(note(&format!("{r:?}"))),
        }
    }
    async fn refund(&self, req: &RefundRequest) -> RefundAnswer {
        match self
            .ledger
            .refund(&req.out_trade_no, &req.refund_no, req.refund_amount)
        {
            RefundOutcome::Refunded(r) => RefundAnswer::Refunded {
                refund_id: Some(r.refund_id),
            },
            other => RefundAnswer::Failed(note(&format!("{other:?}"))),
        }
    }
    async fn refund_query(&self, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
        match self.ledger.refund_of(out_trade_no, refund_no) {
            Some(r) => RefundAnswer::Refunded {
                refund_id: Some(r.refund_id),
            },
            None => RefundAnswer::Failed(note("REFUNDNOTEXIST")),
        }
    }
    async fn bill(&self, _date: &str) -> BillAnswer {
        BillAnswer::NoBill(note("NO_BILL"))
    }
}

/// Short timings so paths that poll and revoke finish in about a second.
pub fn fast_payment() -> PaymentConfig {
    PaymentConfig {
        scan_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(100),
        pay_timeout: Duration::from_millis(800),
        revoke_interval: Duration::from_millis(50),
        revoke_max_attempts: 3,
        http_timeout: Duration::from_secs(2),
        max_amount: 500_000,
    }
}

pub struct TestTill {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub journal_path: PathBuf,
    pub engine: Arc<Engine>,
    pub ledger: Arc<Ledger>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestTill {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestTill {
    /// A till with WeChat and Alipay over one ledger, serving on a socket.
    pub async fn start(allowed_uids: Vec<u32>, mode: u32) -> TestTill {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Arc::new(Ledger::new(Duration::from_millis(100)));
        let gateways: Vec<Arc<dyn Gateway>> = vec![
            Arc::new(LedgerGateway {
                provider: Provider::Wechat,
                ledger: ledger.clone(),
            }),
            Arc::new(LedgerGateway {
                provider: Provider::Alipay,
                ledger: ledger.clone(),
            }),
        ];
        let journal_path = dir.path().join("journal.sqlite");
        let journal = Arc::new(Journal::open(&journal_path, "T1").expect("journal"));
        let engine = Engine::new(journal, gateways, fast_payment());
        let socket = dir.path().join("pos.sock");
        let listener = server::bind(&socket, mode).await.expect("bind");
        let srv = Arc::new(Server {
            ctx: Arc::new(Context {
                hq: None,
                engine: engine.clone(),
                till_id: "T1".into(),
                scanner: None,
            }),
            allowed_uids,
        });
        let server = tokio::spawn(srv.serve(listener));
        TestTill {
            dir,
            socket,
            journal_path,
            engine,
            ledger,
            server,
        }
    }

    pub async fn connect(&self) -> Conn {
        Conn::open(&self.socket).await
    }
}
