//! Where a scanned code goes (payment-rules.md §19), through a real pty,
//! the real reader and engine, checked against what reaches the gateway.

use crate::common;

use std::time::Duration;

use serde_json::{json, Value};
use tillpay::config::ScannerConfig;
use tillpay::domain::Provider;
use tillpay::engine::Notification;
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::pty::Pty;

struct Rig {
    till: common::TestTill,
    pty: Pty,
    events: tokio::sync::broadcast::Receiver<Notification>,
    _status: tillpay::scanner_link::ScannerStatus,
}

async fn rig() -> Rig {
    let till = common::TestTill::start(vec![], 0o600).await;
    let pty = Pty::open().expect("pty");
    let link = till.dir.path().join("tillpay-scanner");
    std::os::unix::fs::symlink(&pty.path, &link).expect("symlink");
    let mut events = till.engine.subscribe();
    let status = tillpay::scanner_link::start_reader(
        ScannerConfig {
            device: link,
            baud: 9600,
            frame_gap: Duration::from_millis(30),
            kind: Default::default(),
        },
        &till.engine,
    );
    wait_scanner(&mut events, "connected").await;
    Rig {
        till,
        pty,
        events,
        _status: status,
    }
}

/// The next `payment.event` called `event`.
async fn wait_payment(events: &mut tokio::sync::broadcast::Receiver<Notification>, event: &str) {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("in time")
            .expect("open");
        if matches!(&n, Notification::Payment(p) if p["event"] == event) {
            return;
        }
    }
}

async fn wait_scanner(
    events: &mut tokio::sync::broadcast::Receiver<Notification>,
    event: &str,
) -> Value {
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("in time")
            .expect("open");
        if let Notification::Scanner(p) = n {
            if p["event"] == event {
                return p;
            }
        }
    }
}

async fn arm(r: &Rig, order: &str) -> tokio::task::JoinHandle<Value> {
    let mut c = r.till.connect().await;
    let order = order.to_string();
    let h = tokio::spawn(async move {
        c.call(1, "charge", json!({"order_no": order, "amount": 250}))
            .await
    });
    for _ in 0..200 {
        if r.till.engine.counts().await.0.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h
}

#[tokio::test]
async fn a_scan_with_no_charge_waiting_charges_nothing() {
    let mut r = rig().await;
    r.pty
        .scan(&Behaviour::PaysAtOnce.code(Provider::Wechat, 1))
        .expect("scan");
    let ignored = wait_scanner(&mut r.events, "ignored").await;
    assert_eq!(ignored["reason"], "no charge waiting");
    assert_eq!(ignored["auth_code_masked"], "1300**********0001");
    assert!(r.till.ledger.orders().is_empty());
}

#[tokio::test]
async fn a_product_barcode_while_armed_is_ignored_and_the_charge_stays_armed() {
    let mut r = rig().await;
    let charge = arm(&r, "B1").await;
    r.pty.scan("6901234567892").expect("scan");
    let ignored = wait_scanner(&mut r.events, "ignored").await;
    assert!(
        ignored["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("not a payment code"),
        "{ignored}"
    );
    assert_eq!(
        r.till.engine.payment("B1").await.expect("p").status,
        tillpay::engine::PaymentStatus::WaitingScan
    );
    r.pty
        .scan(&Behaviour::PaysAtOnce.code(Provider::Alipay, 2))
        .expect("scan");
    let p = charge.await.expect("join");
    assert_eq!(p["result"]["status"], "paid");
    assert_eq!(r.till.ledger.orders().len(), 1);
}

#[tokio::test]
async fn a_double_read_charges_once() {
    let mut r = rig().await;
    let charge = arm(&r, "D1").await;
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 3);
    r.pty
        .write_raw(format!("{code}\r\n{code}\r\n").as_bytes())
        .expect("scan");
    let p = charge.await.expect("join");
    assert_eq!(p["result"]["status"], "paid");
    let ignored = wait_scanner(&mut r.events, "ignored").await;
    assert!(
        ignored["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("double read"),
        "{ignored}"
    );
    let orders = r.till.ledger.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].charges, 1);
}

#[tokio::test]
async fn a_scan_while_the_charge_is_paying_is_ignored() {
    let mut r = rig().await;
    let charge = arm(&r, "P1").await;
    r.pty
        .scan(&Behaviour::ConfirmsAfter(3).code(Provider::Wechat, 4))
        .expect("scan");
    // The first code is being paid; the customer's friend scans another.
    wait_payment(&mut r.events, "submitted").await;
    r.pty
        .scan(&Behaviour::PaysAtOnce.code(Provider::Alipay, 5))
        .expect("scan");
    let ignored = wait_scanner(&mut r.events, "ignored").await;
    assert_eq!(ignored["reason"], "a charge is already paying");
    let p = charge.await.expect("join");
    assert_eq!(p["result"]["status"], "paid");
    assert_eq!(
        r.till.ledger.orders().len(),
        1,
        "only the first code reached the gateway"
    );
}

#[tokio::test]
async fn a_code_scanned_before_the_charge_can_be_scanned_again_at_once() {
    // The cashier scans first and presses "charge" second, then scans the
    // same code again straight away: that is not a double read.
    let mut r = rig().await;
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 6);
    r.pty.scan(&code).expect("scan");
    let ignored = wait_scanner(&mut r.events, "ignored").await;
    assert_eq!(ignored["reason"], "no charge waiting");
    let charge = arm(&r, "E1").await;
    r.pty.scan(&code).expect("scan again");
    let p = tokio::time::timeout(Duration::from_secs(2), charge)
        .await
        .expect("taken within the double-read window")
        .expect("join");
    assert_eq!(p["result"]["status"], "paid");
    assert_eq!(r.till.ledger.orders().len(), 1);
}
