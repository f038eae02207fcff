//! Transport faults from a small local fault server (payment-rules.md §4): only a
//! request that provably never left may count as a definite failure;
//! everything after the first byte is unknown.

use crate::wechat_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tillpay::domain::{Fen, Provider};
use tillpay::gateway::wechat::WechatSignType;
use tillpay::gateway::wechat::{sign, xml, WechatGateway};
use tillpay::gateway::{
    BillAnswer, Gateway, PayAnswer, PayRequest, QueryAnswer, RefundAnswer, RefundRequest,
    RevokeAnswer,
};
use tillpay::sim::behaviour::Behaviour;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wechat_support::*;

const HTTP_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Read the request, then close without a word.
    CloseAfterRead,
    /// Read the request and never answer.
    Silent,
    Http500,
    Garbage,
    /// A well-formed paid answer signed with another key.
    WrongSign,
    /// A well-formed paid answer with no sign at all.
    NoSign,
    /// The headers and half the paid answer, then a TCP reset.
    ResetMidAnswer,
    /// The paid answer one byte every 100 ms, slower than the timeout.
    Dribble,
}

/// Reads one HTTP request (headers and a Content-Length body).
pub(crate) async fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return buf,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf;
            }
        }
    }
}

fn paid_answer(key: Option<&str>) -> String {
    let mut f: BTreeMap<String, String> = [
        ("return_code", "SUCCESS"),
        ("return_msg", "OK"),
        ("result_code", "SUCCESS"),
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("transaction_id", "4200000000000000000000000001"),
        ("out_trade_no", "F1"),
        ("trade_state", "SUCCESS"),
        ("total_fee", "100"),
        ("time_end", "20260105093000"),
        ("recall", "N"),
        ("refund_id", "50000000000000000001"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(key) = key {
        let s = sign::sign(&f, key, sign::SignType::Md5);
        f.insert("sign".into(), s);
    }
    xml::to_xml(&f)
}

async fn fault_server(fault: Fault) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                read_request(&mut s).await;
                let reply = |status: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let text = match fault {
                    Fault::CloseAfterRead => return,
                    Fault::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    Fault::Http500 => {
                        reply("500 Internal Server Error", &paid_answer(Some(API_KEY)))
                    }
                    Fault::Garbage => reply("200 OK", "<html>Bad Gateway</html>"),
                    Fault::WrongSign => reply(
                        "200 OK",
                        &paid_answer(Some("ffffffffffffffffffffffffffffffff")),
                    ),
                    Fault::NoSign => reply("200 OK", &paid_answer(None)),
                    Fault::ResetMidAnswer => {
                        let full = reply("200 OK", &paid_answer(Some(API_KEY)));
                        let _ = s.write_all(&full.as_bytes()[..full.len() / 2]).await;
                        // Linger 0: close with RST, as a crashed proxy does.
                        // (Deprecated because a non-zero linger blocks on
                        // drop; zero closes at once.)
                        #[allow(deprecated)]
                        let _ = s.set_linger(Some(Duration::ZERO));
                        drop(s);
                        return;
                    }
                    Fault::Dribble => {
                        let full = reply("200 OK", &paid_answer(Some(API_KEY)));
                        for b in full.as_bytes() {
                            if s.write_all(&[*b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        return;
                    }
                };
                let _ = s.write_all(text.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), task)
}

fn gateway(base_url: &str) -> WechatGateway {
    WechatGateway::new(&config(base_url, WechatSignType::Md5), TILL, HTTP_TIMEOUT)
        .expect("client builds")
}

fn pay_request() -> PayRequest {
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 77);
    PayRequest {
        operator_id: None,
        out_trade_no: "F1".into(),
        order_no: "A".into(),
        seq: 1,
        amount: Fen(100),
        auth_code: tillpay::gateway::recognise(&code).expect("valid"),
        subject: "x".into(),
    }
}

fn refund_request() -> RefundRequest {
    RefundRequest {
        operator_id: None,
        out_trade_no: "F1".into(),
        transaction_id: None,
        refund_no: "R1".into(),
        total_amount: Fen(100),
        refund_amount: Fen(100),
        reason: None,
    }
}

fn assert_no_code_leak(text: &str) {
    let code = pay_request().auth_code;
    assert!(!text.contains(code.expose()), "full auth code in {text}");
}

#[tokio::test]
async fn nothing_listening_is_a_definite_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let gw = gateway(&format!("http://127.0.0.1:{port}"));
    match gw.pay(&pay_request()).await {
        PayAnswer::NotSent(note) => assert_no_code_leak(&format!("{note:?}")),
        other => panic!("connection refused gave {other:?}"),
    }
    // Nothing else is ever "done" on a refused connection.
    assert!(matches!(gw.query("F1").await, QueryAnswer::Pending { .. }));
    assert!(matches!(gw.revoke("F1").await, RevokeAnswer::Retry(_)));
    assert!(matches!(
        gw.refund(&refund_request()).await,
        RefundAnswer::Unknown(_)
    ));
    assert!(matches!(gw.bill("2026-01-05").await, BillAnswer::Failed(_)));
}

#[tokio::test]
async fn an_unresolvable_host_is_a_definite_failure() {
    let gw = gateway("http://tillpay-test.invalid");
    assert!(matches!(
        gw.pay(&pay_request()).await,
        PayAnswer::NotSent(_)
    ));
}

async fn check_unknown(fault: Fault) {
    let (url, server) = fault_server(fault).await;
    let gw = gateway(&url);
    let started = Instant::now();
    let pay = gw.pay(&pay_request()).await;
    match &pay {
        PayAnswer::Unknown { note, user_paying } => {
            assert!(!user_paying, "{fault:?}");
            assert_no_code_leak(&format!("{note:?}"));
        }
        other => panic!("{fault:?} gave {other:?}"),
    }
    assert!(
        started.elapsed() < HTTP_TIMEOUT * 5,
        "{fault:?} took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            gw.query("F1").await,
            QueryAnswer::Pending {
                user_paying: false,
                ..
            }
        ),
        "{fault:?}"
    );
    assert!(
        matches!(gw.revoke("F1").await, RevokeAnswer::Retry(_)),
        "{fault:?}"
    );
    assert!(
        matches!(gw.refund(&refund_request()).await, RefundAnswer::Unknown(_)),
        "{fault:?}"
    );
    assert!(
        matches!(gw.refund_query("F1", "R1").await, RefundAnswer::Unknown(_)),
        "{fault:?}"
    );
    server.abort();
}

#[tokio::test]
async fn closed_after_reading_the_request_is_unknown() {
    check_unknown(Fault::CloseAfterRead).await;
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_unknown() {
    check_unknown(Fault::Silent).await;
}

#[tokio::test]
async fn a_reset_half_way_through_a_paid_answer_is_unknown() {
    check_unknown(Fault::ResetMidAnswer).await;
}

#[tokio::test]
async fn an_answer_dribbled_a_byte_at_a_time_is_cut_off_by_the_timeout_and_unknown() {
    // check_unknown also holds the call to a few timeouts: a dribbling
    // server cannot keep a sale waiting.
    check_unknown(Fault::Dribble).await;
}

#[tokio::test]
async fn http_500_is_unknown_even_with_a_paid_body() {
    check_unknown(Fault::Http500).await;
}

#[tokio::test]
async fn a_garbage_body_is_unknown() {
    check_unknown(Fault::Garbage).await;
}

#[tokio::test]
async fn a_paid_answer_with_a_wrong_signature_is_unknown() {
    check_unknown(Fault::WrongSign).await;
}

#[tokio::test]
async fn a_paid_answer_without_a_signature_is_unknown() {
    check_unknown(Fault::NoSign).await;
}

/// The control case: the same paid answer, correctly signed, is paid.
/// Without it the fault tests could pass for a reason of their own.
#[tokio::test]
async fn the_same_answer_correctly_signed_is_believed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            read_request(&mut s).await;
            let body = paid_answer(Some(API_KEY));
            let text = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(text.as_bytes()).await;
        }
    });
    let gw = gateway(&url);
    assert!(matches!(gw.pay(&pay_request()).await, PayAnswer::Paid(_)));
    assert!(matches!(gw.query("F1").await, QueryAnswer::Paid(_)));
    assert!(matches!(gw.revoke("F1").await, RevokeAnswer::Revoked(_)));
    server.abort();
}
