//! Both gateways over real TLS, end to end: a TLS gateway double on
//! loopback, with its own CA (trusted through `ca_file`), that asks every
//! client for a certificate and checks it against that CA, in front of the
//! simulators. WeChat's /secapi/ calls (reverse, refund) must carry the
//! merchant certificate: the one in `tests/fixtures/tls` is RSA 2048 with a
//! PKCS#8 key, as WeChat issues `apiclient_cert.pem`.

use crate::wechat_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tillpay::domain::{Fen, Provider};
use tillpay::gateway::wechat::WechatGateway;
use tillpay::gateway::wechat::{ClientIdentity, WechatSignType};
use tillpay::gateway::{Gateway, PayAnswer, PayRequest, RevokeAnswer, RevokeEffect};
use tillpay::sim::behaviour::Behaviour;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use wechat_support::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the gateway double saw on one TLS connection.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    path: String,
    /// A client certificate was presented and chains to the gateway's CA.
    client_cert: bool,
}

/// Terminates TLS on 127.0.0.1 and forwards each connection to `upstream`
/// (the plain-HTTP simulator). A client certificate is asked for and, when
/// given, must chain to the CA; a `/secapi/` request without one is cut off
/// unanswered. The path of each connection's first request is recorded
/// with whether it came with one.
async fn tls_gateway(upstream: String) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(fixture("ca.pem").as_bytes()).expect("ca"))
        .expect("add ca");
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .expect("verifier");
    let certs = CertificateDer::pem_slice_iter(fixture("server.pem").as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("server cert");
    let key = PrivateKeyDer::from_pem_slice(fixture("server-key.pem").as_bytes()).expect("key");
    let server = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let upstream = upstream.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log, upstream) = (acceptor.clone(), log.clone(), upstream.clone());
            tokio::spawn(async move {
                // A certificate that does not chain to the CA fails here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let client_cert = tls.get_ref().1.peer_certificates().is_some();
                let mut head = vec![0u8; 4096];
                let Ok(n) = tls.read(&mut head).await else {
                    return;
                };
                head.truncate(n);
                let line = String::from_utf8_lossy(&head).to_string();
                let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                let secure = path.starts_with("/secapi/");
                log.lock().expect("log").push(Seen { path, client_cert });
                // As WeChat: /secapi/ only with the merchant certificate.
                // Without it the connection is closed and nothing is done.
                if secure && !client_cert {
                    return;
                }
                // One request per connection, so that every request is
                // looked at: the simulator is asked to close after answering.
                if let Some(end) = head.windows(2).position(|w| w == b"\r\n") {
                    head.splice(end + 2..end + 2, b"Connection: close\r\n".iter().copied());
                }
                let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                if up.write_all(&head).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    (format!("https://127.0.0.1:{}", addr.port()), seen)
}

fn request(behaviour: Behaviour, serial: u64) -> PayRequest {
    let code = behaviour.code(Provider::Wechat, serial);
    PayRequest {
        operator_id: None,
        out_trade_no: format!("MTLS_{serial}"),
        order_no: "A".into(),
        seq: 1,
        amount: Fen(800),
        auth_code: tillpay::gateway::recognise(&code).expect("code"),
        subject: "mTLS".into(),
    }
}

fn gateway(base_url: &str, cert: &str, key: &str) -> WechatGateway {
    let mut cfg = config(base_url, WechatSignType::HmacSha256);
    cfg.ca_pem = Some(fixture("ca.pem"));
    cfg.client_identity = Some(ClientIdentity {
        cert_pem: fixture(cert),
        key_pem: fixture(key),
        cert_file: cert.into(),
    });
    WechatGateway::new(&cfg, TILL, Duration::from_secs(2)).expect("client")
}

#[tokio::test]
async fn reverse_goes_with_the_merchant_certificate_and_micropay_without() {
    let sim = start_sim(Duration::from_millis(20)).await;
    let (base_url, seen) = tls_gateway(sim.base_url.clone()).await;
    let gw = gateway(&base_url, "apiclient_cert.pem", "apiclient_key.pem");
    let req = request(Behaviour::NeverConfirms, 1);
    assert!(
        matches!(gw.pay(&req).await, PayAnswer::Unknown { .. }),
        "micropay over TLS reaches the simulator"
    );
    // WeChat's reverse does not say whether it closed or refunded; the
    // order query after it does: never paid, so closed.
    assert_eq!(
        gw.revoke(&req.out_trade_no).await,
        RevokeAnswer::Revoked(RevokeEffect::Closed)
    );
    let seen = seen.lock().expect("seen").clone();
    assert!(
        seen.contains(&Seen {
            path: "/pay/micropay".into(),
            client_cert: false
        }),
        "{seen:?}"
    );
    assert!(
        seen.contains(&Seen {
            path: "/secapi/pay/reverse".into(),
            client_cert: true
        }),
        "the reverse carried the merchant certificate: {seen:?}"
    );
}

#[tokio::test]
async fn a_certificate_the_gateway_does_not_know_leaves_the_reverse_to_retry() {
    let sim = start_sim(Duration::from_millis(20)).await;
    let (base_url, seen) = tls_gateway(sim.base_url.clone()).await;
    let gw = gateway(&base_url, "stranger_cert.pem", "stranger_key.pem");
    let req = request(Behaviour::NeverConfirms, 2);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Unknown { .. }));
    // The handshake fails: nothing reached WeChat, so the revoke is
    // retried (and in the end handed to an operator), never taken as done.
    assert!(
        matches!(gw.revoke(&req.out_trade_no).await, RevokeAnswer::Retry(_)),
        "a failed handshake is not a revoke"
    );
    assert!(
        !seen
            .lock()
            .expect("seen")
            .iter()
            .any(|s| s.path.starts_with("/secapi/")),
        "no /secapi/ request got through"
    );
}

#[tokio::test]
async fn a_reverse_without_the_merchant_certificate_is_refused_and_retried() {
    let sim = start_sim(Duration::from_millis(20)).await;
    let (base_url, seen) = tls_gateway(sim.base_url.clone()).await;
    let mut cfg = config(&base_url, WechatSignType::HmacSha256);
    cfg.ca_pem = Some(fixture("ca.pem"));
    cfg.client_identity = None;
    let gw = WechatGateway::new(&cfg, TILL, Duration::from_secs(2)).expect("client");
    let req = request(Behaviour::NeverConfirms, 4);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Unknown { .. }));
    let r = gw.revoke(&req.out_trade_no).await;
    assert!(matches!(r, RevokeAnswer::Retry(_)), "{r:?}");
    assert!(seen.lock().expect("seen").contains(&Seen {
        path: "/secapi/pay/reverse".into(),
        client_cert: false
    }));
    let order = sim.ledger.order(&req.out_trade_no).expect("order");
    assert_eq!(order.revoke_calls, 0, "the reverse never reached WeChat");
}

#[test]
fn a_ca_file_without_a_certificate_is_refused_naming_the_key() {
    let mut cfg = config("https://127.0.0.1:1", WechatSignType::HmacSha256);
    cfg.ca_pem = Some("not a certificate\n".into());
    let e = WechatGateway::new(&cfg, TILL, Duration::from_secs(2)).expect_err("refused");
    assert_eq!(e.key, "wechat.ca_file", "{e}");
}

#[tokio::test]
async fn alipay_over_tls_trusts_the_configured_ca() {
    use tillpay::gateway::alipay::AlipayGateway;
    use tillpay::sim::alipay::{demo_client_config, AlipaySim};
    use tillpay::sim::ledger::Ledger;

    let ledger = Arc::new(Ledger::new(Duration::from_millis(20)));
    let sim = Arc::new(AlipaySim::demo(ledger.clone()).expect("demo sim"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let plain = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(tillpay::sim::http::serve(listener, sim));
    let (base_url, seen) = tls_gateway(plain).await;
    let mut cfg = demo_client_config(&format!("{base_url}/gateway.do"));
    let code = Behaviour::PaysAtOnce.code(Provider::Alipay, 3);
    let req = PayRequest {
        operator_id: None,
        out_trade_no: "TLS_3".into(),
        order_no: "A".into(),
        seq: 1,
        amount: Fen(1),
        auth_code: tillpay::gateway::recognise(&code).expect("code"),
        subject: "TLS".into(),
    };
    // Without the CA the handshake fails: nothing reached Alipay, and the
    // answer says the request was never sent.
    let untrusting = AlipayGateway::new(&cfg, TILL, Duration::from_secs(2)).expect("client");
    let answer = untrusting.pay(&req).await;
    assert!(
        matches!(answer, PayAnswer::NotSent(_)),
        "an untrusted server certificate is never talked to: {answer:?}"
    );
    assert!(ledger.orders().is_empty());
    cfg.ca_pem = Some(fixture("ca.pem"));
    let gw = AlipayGateway::new(&cfg, TILL, Duration::from_secs(2)).expect("client");
    assert!(matches!(gw.pay(&req).await, PayAnswer::Paid(_)));
    assert_eq!(ledger.orders().len(), 1);
    assert!(seen
        .lock()
        .expect("seen")
        .iter()
        .any(|s| s.path.starts_with("/gateway.do")));
}
