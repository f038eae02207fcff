//! WeChat's backup domain (api2.mch.weixin.qq.com): a request the primary
//! could not even be connected to goes there, on v2 and v3; a request the
//! primary took and then failed is unknown and never sent again.

use std::sync::Arc;
use std::time::Duration;

use tillpay::gateway::wechat::{WechatGateway, WechatSignType};
use tillpay::gateway::{Gateway, PayAnswer, QueryAnswer};
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::ledger::Ledger;
use tokio::io::AsyncReadExt;

use crate::wechat_sim::request;
use crate::wechat_support::{config, start_sim, TILL};
use crate::wechat_v3::{start_v3, v3_client, v3_config};

/// An address nothing listens on: connections are refused.
async fn refusing() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

/// A server that reads each request and closes without answering: the
/// request reached it, so nobody knows what happened.
async fn taking_then_failing() -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
        }
    });
    (format!("http://{addr}"), task)
}

fn v2_client(primary: &str, backup: &str) -> WechatGateway {
    let mut cfg = config(primary, WechatSignType::HmacSha256);
    cfg.backup_url = Some(backup.to_string());
    WechatGateway::new(&cfg, TILL, Duration::from_secs(2)).expect("client")
}

#[tokio::test]
async fn v2_goes_to_the_backup_when_the_primary_refuses_connections() {
    let sim = start_sim(Duration::from_millis(50)).await;
    let gw = v2_client(&refusing().await, &sim.base_url);
    assert!(!gw.route().expect("route").using_backup);
    let req = request(Behaviour::PaysAtOnce, 1, 100);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Paid(_)));
    assert_eq!(
        sim.ledger.order(&req.out_trade_no).map(|o| o.charges),
        Some(1)
    );
    let route = gw.route().expect("route");
    assert!(
        route.using_backup,
        "status says the backup goes first now: {route:?}"
    );
    assert!(matches!(
        gw.query(&req.out_trade_no).await,
        QueryAnswer::Paid(_)
    ));
    assert_eq!(sim.recorder.requests().len(), 2);
}

#[tokio::test]
async fn v2_never_resends_a_pay_the_primary_took_and_then_failed() {
    let sim = start_sim(Duration::from_millis(50)).await;
    let (primary, _task) = taking_then_failing().await;
    let gw = v2_client(&primary, &sim.base_url);
    let req = request(Behaviour::PaysAtOnce, 2, 100);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Unknown { .. }));
    assert!(sim.recorder.requests().is_empty(), "the backup saw nothing");
    assert!(!gw.route().expect("route").using_backup);
}

#[tokio::test]
async fn v3_goes_to_the_backup_when_the_primary_refuses_connections() {
    let sim = start_v3(Arc::new(Ledger::new(Duration::from_millis(50)))).await;
    let mut cfg = v3_config(&refusing().await);
    cfg.backup_url = Some(sim.base_url.clone());
    let gw = v3_client(&cfg);
    let req = request(Behaviour::PaysAtOnce, 3, 100);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Paid(_)));
    assert!(gw.route().expect("route").using_backup);
    assert!(matches!(
        gw.query(&req.out_trade_no).await,
        QueryAnswer::Paid(_)
    ));
    assert_eq!(sim.seen().len(), 2);
}

#[tokio::test]
async fn v3_never_resends_a_pay_the_primary_took_and_then_failed() {
    let sim = start_v3(Arc::new(Ledger::new(Duration::from_millis(50)))).await;
    let (primary, _task) = taking_then_failing().await;
    let mut cfg = v3_config(&primary);
    cfg.backup_url = Some(sim.base_url.clone());
    let gw = v3_client(&cfg);
    let req = request(Behaviour::PaysAtOnce, 4, 100);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Unknown { .. }));
    assert!(sim.seen().is_empty(), "the backup saw nothing");
}

#[tokio::test]
async fn with_both_domains_refusing_nothing_was_sent() {
    let gw = v2_client(&refusing().await, &refusing().await);
    let req = request(Behaviour::PaysAtOnce, 5, 100);
    assert!(matches!(gw.pay(&req).await, PayAnswer::NotSent(_)));
}
