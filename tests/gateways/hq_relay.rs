//! The HQ relay's client against a stand-in HQ on loopback: a signed
//! answer to this request is believed; an answer signed for another till,
//! unsigned, to another request (a replay), to another call, or with an
//! HTTP error is unknown; a connection that never opened is "not sent".

use std::time::Duration;

use serde_json::Value;
use tillpay::domain::{AuthCode, Fen, Provider};
use tillpay::gateway::hq::wire::{self, Answer, BillReply, Reply};
use tillpay::gateway::hq::{RelayConfig, RelayGateway};
use tillpay::gateway::{
    BillAnswer, Gateway, PaidInfo, PayAnswer, PayRequest, QueryAnswer, RevokeAnswer,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const TOKEN: &str = "till-token-T1-0123456789abcdef";
const CODE: &str = "134567890123456789";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Hq {
    Honest,
    OtherTillsToken,
    Unsigned,
    Replay,
    OtherCall,
    Http503,
}

fn paid() -> PayAnswer {
    PayAnswer::Paid(PaidInfo {
        transaction_id: "4200000001".into(),
        paid_at: None,
        amount: Some(Fen(100)),
        paid_by: Default::default(),
    })
}

/// Reads one request; its head and its JSON body.
async fn read(s: &mut tokio::net::TcpStream) -> (String, Value) {
    let raw = crate::wechat_faults::read_request(s).await;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = raw
        .get(end + 4..)
        .and_then(|b| serde_json::from_slice(b).ok());
    (head, body.unwrap_or(Value::Null))
}

/// A stand-in HQ answering every call as `hq` does; the requests it saw.
async fn stand_in(
    hq: Hq,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (head, body) = read(&mut s).await;
                let nonce = body["nonce"].as_str().unwrap_or("").to_string();
                let op = body["call"]["op"].as_str().unwrap_or("").to_string();
                let _ = tx.send((head, body));
                let answer = match (hq, op.as_str()) {
                    // A true answer, to the wrong call: a query's "paid"
                    // to a pay, a pay's to the rest.
                    (Hq::OtherCall, "pay") => Answer::Query(QueryAnswer::Paid(match paid() {
                        PayAnswer::Paid(p) => p,
                        _ => unreachable!(),
                    })),
                    (Hq::OtherCall, _) => Answer::Pay(paid()),
                    (_, "pay") => Answer::Pay(paid()),
                    (_, "query") => Answer::Query(QueryAnswer::NotPaid(
                        tillpay::gateway::GatewayNote::new("CLOSED", "closed"),
                    )),
                    (_, "revoke") => Answer::Revoke(RevokeAnswer::Revoked(
                        tillpay::gateway::RevokeEffect::Closed,
                    )),
                    _ => Answer::Bill(BillReply::Rows(vec![tillpay::gateway::bill::BillRow {
                        provider: Provider::Wechat,
                        till: "T1".into(),
                        kind: tillpay::gateway::bill::RowKind::Payment,
                        out_trade_no: "T1_A_1".into(),
                        transaction_id: "4200000001".into(),
                        refund_no: None,
                        amount: Fen(100),
                    }])),
                };
                let nonce = if hq == Hq::Replay {
                    "an-earlier-request".to_string()
                } else {
                    nonce
                };
                let body = serde_json::to_vec(&Reply { nonce, answer }).expect("json");
                let sig = match hq {
                    Hq::OtherTillsToken => wire::sign("till-token-T2-0123456789abcdef", &body),
                    _ => wire::sign(TOKEN, &body),
                };
                let status = if hq == Hq::Http503 {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let sig_line = if hq == Hq::Unsigned {
                    String::new()
                } else {
                    format!("{}: {sig}\r\n", wire::SIGNATURE)
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{sig_line}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    (url, rx)
}

fn relay(url: &str) -> RelayGateway {
    let cfg = RelayConfig {
        url: url.to_string(),
        token: TOKEN.to_string(),
        min_revoke_delay: Duration::from_secs(15),
    };
    RelayGateway::new(&cfg, "T1", Duration::from_millis(500)).expect("client")
}

fn pay_request() -> PayRequest {
    PayRequest {
        out_trade_no: "T1_A_1".into(),
        order_no: "A".into(),
        seq: 1,
        amount: Fen(100),
        auth_code: AuthCode::new(CODE, Provider::Wechat),
        subject: "Shop".into(),
        operator_id: None,
    }
}

#[tokio::test]
async fn only_a_signed_answer_to_this_request_moves_a_payment() {
    for hq in [
        Hq::Honest,
        Hq::OtherTillsToken,
        Hq::Unsigned,
        Hq::Replay,
        Hq::OtherCall,
        Hq::Http503,
    ] {
        let (url, mut seen) = stand_in(hq).await;
        let g = relay(&url);
        let a = g.pay(&pay_request()).await;
        let (head, body) = seen.recv().await.expect("HQ saw the request");
        assert!(
            head.contains(&format!(
                "authorization: bearer {}",
                TOKEN.to_ascii_lowercase()
            )),
            "{head}"
        );
        assert_eq!(body["call"]["op"], "pay");
        assert_eq!(
            body["call"]["auth_code"], CODE,
            "HQ needs the code whole to pay"
        );
        let revoke = g.revoke("T1_A_1").await;
        let query = g.query("T1_A_1").await;
        if hq == Hq::Honest {
            assert_eq!(a, paid());
            assert_eq!(
                revoke,
                RevokeAnswer::Revoked(tillpay::gateway::RevokeEffect::Closed)
            );
            assert!(matches!(query, QueryAnswer::NotPaid(_)));
            continue;
        }
        let PayAnswer::Unknown {
            note,
            user_paying: false,
        } = &a
        else {
            panic!("{hq:?}: {a:?}");
        };
        let want = match hq {
            Hq::OtherTillsToken | Hq::Unsigned => "BAD_SIGNATURE",
            Hq::Replay | Hq::OtherCall => "WRONG_ANSWER",
            _ => "HQ_503",
        };
        assert_eq!(note.code, want, "{hq:?}");
        assert!(!note.message.contains(CODE));
        assert!(
            matches!(revoke, RevokeAnswer::Retry(_)),
            "{hq:?}: {revoke:?}"
        );
        assert!(
            matches!(query, QueryAnswer::Pending { .. }),
            "{hq:?}: {query:?}"
        );
    }
}

#[tokio::test]
async fn an_hq_that_cannot_be_reached_never_had_the_request() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let g = relay(&url);
    assert!(matches!(g.pay(&pay_request()).await, PayAnswer::NotSent(_)));
    assert_eq!(g.min_revoke_delay(), Duration::from_secs(15));
}

#[tokio::test]
async fn a_relayed_bill_reads_as_the_channels_bill() {
    let (url, _seen) = stand_in(Hq::Honest).await;
    let BillAnswer::File(bytes) = relay(&url).bill("2026-12-01").await else {
        panic!("no bill");
    };
    let ch = tillpay::gateway::channel("hq").expect("registered");
    let bill = ch
        .parse_bill(&mut std::io::Cursor::new(bytes), "T1")
        .expect("parses");
    assert_eq!(bill.rows.len(), 1);
    assert_eq!(bill.rows[0].out_trade_no, "T1_A_1");
}
