//! The browser POS interface on real loopback HTTP and WebSocket: the same
//! methods, answers and notifications as the Unix socket, and a request
//! from another origin, without the till's token, or naming another Host
//! (a DNS-rebinding page) is refused before anything is charged.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tillpay::config::WebConfig;
use tillpay::domain::Provider;
use tillpay::pos::rpc::Context;
use tillpay::sim::behaviour::Behaviour;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestTill;

const TOKEN: &str = "test-token-0123456789abcdefghij";
const PAGE: &str = "http://localhost:3000";

struct Web {
    till: TestTill,
    addr: std::net::SocketAddr,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

async fn web() -> Web {
    let till = TestTill::start(vec![], 0o600).await;
    let cfg = WebConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        token: TOKEN.into(),
        allowed_origins: vec![PAGE.into()],
    };
    let listener = tillpay::pos::web::bind(&cfg).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let ctx = Arc::new(Context {
        hq: None,
        engine: till.engine.clone(),
        till_id: "T1".into(),
        scanner: None,
    });
    let server = tokio::spawn(async move { tillpay::pos::web::serve(listener, ctx, &cfg).await });
    Web {
        till,
        addr,
        http: reqwest::Client::new(),
        _server: server,
    }
}

impl Web {
    /// `POST /v1/<method>` with these headers; the status and the body.
    async fn post(&self, method: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("http://{}/v1/{method}", self.addr))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("http");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Nothing of this order reached the gateway or the journal.
    async fn nothing_charged(&self, order: &str) {
        assert!(
            self.till
                .ledger
                .orders()
                .iter()
                .all(|o| !o.out_trade_no.contains(order)),
            "{order} reached the gateway"
        );
        assert!(
            self.till.engine.payment(order).await.is_err(),
            "{order} is in the journal"
        );
    }
}

fn code(serial: u64) -> String {
    Behaviour::PaysAtOnce.code(Provider::Alipay, serial)
}

const BEARER: (&str, &str) = ("authorization", "Bearer test-token-0123456789abcdefghij");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_charges_with_the_token_and_refuses_other_origins_tokens_and_hosts() {
    let w = web().await;
    let (status, p) = w
        .post(
            "charge",
            json!({"order_no": "H1", "amount": 300, "auth_code": code(1), "operator_id": "web1"}),
            &[BEARER],
        )
        .await;
    assert_eq!((status, &p["status"]), (200, &json!("paid")), "{p}");
    assert_eq!(p["operator_id"], "web1");
    // The same errors as the socket, with an HTTP status to branch on.
    let (status, e) = w
        .post("query", json!({"order_no": "NOPE"}), &[BEARER])
        .await;
    assert_eq!((status, &e["code"]), (404, &json!(1005)), "{e}");
    let (status, e) = w
        .post(
            "charge",
            json!({"order_no": "H2", "amount": 1.5}),
            &[BEARER],
        )
        .await;
    assert_eq!((status, &e["code"]), (400, &json!(-32602)), "{e}");
    let (status, e) = w.post("nosuch", json!({}), &[BEARER]).await;
    assert_eq!((status, &e["code"]), (404, &json!(-32601)), "{e}");
    // A page on the allowed origin is told so in CORS headers.
    let resp = w
        .http
        .post(format!("http://{}/v1/status", w.addr))
        .header("authorization", BEARER.1)
        .header("origin", PAGE)
        .send()
        .await
        .expect("http");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], PAGE);
    let pre = w
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/v1/charge", w.addr),
        )
        .header("origin", PAGE)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(pre.status(), 204);
    assert!(pre.headers()["access-control-allow-headers"]
        .to_str()
        .is_ok_and(|h| h.contains("authorization")));

    // Refused, and nothing charged: a wrong token, none, another origin, a
    // rebinding Host (the page's own domain resolved to 127.0.0.1).
    let charge =
        |order: &str, serial| json!({"order_no": order, "amount": 300, "auth_code": code(serial)});
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: [(&str, Headers, u16); 5] = [
        (
            "X1",
            vec![("authorization", "Bearer wrong-token-0123456789abcdefg")],
            401,
        ),
        ("X2", vec![], 401),
        ("X3", vec![BEARER, ("origin", "http://evil.example")], 403),
        ("X4", vec![BEARER, ("host", "evil.example:8765")], 403),
        ("X5", vec![BEARER, ("origin", "null")], 403),
    ];
    for (i, (order, headers, want)) in cases.iter().enumerate() {
        let (status, e) = w
            .post("charge", charge(order, 10 + i as u64), headers)
            .await;
        assert_eq!(status, *want, "{order}: {e}");
        assert!(
            !e.to_string().contains(TOKEN),
            "the token is never echoed: {e}"
        );
        w.nothing_charged(order).await;
    }
    let (status, _) = w
        .post(
            "charge",
            charge("X6", 20),
            &[
                BEARER,
                ("host", &format!("attacker.example:{}", w.addr.port())),
            ],
        )
        .await;
    assert_eq!(status, 403, "a rebinding Host with the right port");
    w.nothing_charged("X6").await;
    let pre = w
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/v1/charge", w.addr),
        )
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("preflight");
    assert_eq!(pre.status(), 403, "another origin's preflight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_websocket_carries_the_token_as_a_subprotocol_and_hears_the_notifications() {
    let w = web().await;
    let addr = w.addr;
    let open = |protocol: &str, origin: &str| {
        let mut req = format!("ws://{addr}/rpc")
            .into_client_request()
            .expect("request");
        let h = req.headers_mut();
        h.insert("sec-websocket-protocol", protocol.parse().expect("header"));
        h.insert("origin", origin.parse().expect("header"));
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            tokio_tungstenite::client_async(req, tcp).await
        }
    };
    // Refused before the upgrade: another origin, a wrong token.
    for (protocol, origin, want) in [
        (
            format!("tillpay.bearer.{TOKEN}"),
            "http://evil.example",
            403,
        ),
        ("tillpay.bearer.wrong".to_string(), PAGE, 401),
    ] {
        match open(&protocol, origin).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), want, "{origin}")
            }
            other => panic!(
                "{origin}: not refused: {:?}",
                other.map(|(_, r)| r.status())
            ),
        }
    }
    let (mut ws, resp) = open(&format!("tillpay.bearer.{TOKEN}"), PAGE)
        .await
        .expect("open");
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        format!("tillpay.bearer.{TOKEN}").as_str(),
        "the browser needs its subprotocol named back"
    );
    // Garbage gets a JSON-RPC error; the connection stays.
    ws.send(Message::text("{not json")).await.expect("send");
    let e = next_json(&mut ws).await;
    assert_eq!(e["error"]["code"], -32700, "{e}");
    let req = json!({"jsonrpc": "2.0", "id": 7, "method": "charge",
                     "params": {"order_no": "W1", "amount": 400, "auth_code": code(30)}});
    ws.send(Message::text(req.to_string())).await.expect("send");
    let mut events = Vec::new();
    let answer = loop {
        let m = next_json(&mut ws).await;
        if m["id"] == 7 {
            break m;
        }
        if m["method"] == "payment.event" && m["params"]["order_no"] == "W1" {
            events.push(m["params"]["event"].as_str().unwrap_or("").to_string());
        }
    };
    assert_eq!(answer["result"]["status"], "paid", "{answer}");
    assert!(events.iter().any(|e| e == "submitted"), "{events:?}");
    let refund = json!({"jsonrpc": "2.0", "id": 8, "method": "refund",
                        "params": {"order_no": "W1", "refund_no": "WR1", "amount": 100}});
    ws.send(Message::text(refund.to_string()))
        .await
        .expect("send");
    let r = loop {
        let m = next_json(&mut ws).await;
        if m["id"] == 8 {
            break m;
        }
    };
    assert_eq!(r["result"]["status"], "refunded", "{r}");
    // A message past the limit closes the connection; the till runs on.
    let big = "x".repeat(tillpay::pos::server::MAX_LINE + 10);
    let _ = ws.send(Message::text(big)).await;
    let mut closed = false;
    for _ in 0..5 {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "an over-long message ends the connection");
    let (status, p) = w.post("query", json!({"order_no": "W1"}), &[BEARER]).await;
    assert_eq!((status, &p["refunded_amount"]), (200, &json!(100)), "{p}");
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).expect("json");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_are_capped_like_socket_clients() {
    let w = web().await;
    let addr = w.addr;
    let open = || async move {
        let mut req = format!("ws://{addr}/rpc")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {TOKEN}").parse().expect("header"),
        );
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tokio_tungstenite::client_async(req, tcp).await
    };
    let mut held = Vec::new();
    for _ in 0..tillpay::pos::server::MAX_CLIENTS {
        held.push(open().await.expect("a session within the cap"));
    }
    match open().await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("one past the cap: {:?}", other.map(|(_, r)| r.status())),
    }
    // A session that ends frees its slot.
    let (mut first, _) = held.remove(0);
    first.close(None).await.expect("close");
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(s) = open().await {
            again = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the freed slot is taken again");
}
