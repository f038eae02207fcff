//! `tillpay demo`: the whole till on one machine with no scanner and no
//! merchant account. The simulator (both dialects) on loopback, a virtual
//! scan gun (a pty the daemon reads like a real one), the daemon with a
//! temporary journal, and a cashier: scripted without a terminal,
//! interactive with one.

pub mod dev;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{Config, PaymentConfig, PosConfig, ScannerConfig, TillConfig};
use crate::domain::{Fen, Provider};
use crate::gateway::channel::ChannelConfig;
use crate::pos::client::Client;
use crate::sim::behaviour::Behaviour;
use crate::sim::{Simulator, WechatApi};

/// Demo timings, shorter than production so a sale that is never confirmed
/// is revoked in seconds; said on screen.
fn demo_payment() -> PaymentConfig {
    PaymentConfig {
        scan_timeout: Duration::from_secs(120),
        poll_interval: Duration::from_millis(1000),
        pay_timeout: Duration::from_millis(6000),
        revoke_interval: Duration::from_millis(500),
        revoke_max_attempts: 3,
        http_timeout: Duration::from_secs(3),
        max_amount: 500_000,
    }
}

/// Which route the demo till's payments take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DemoChannel {
    /// WeChat Pay's and Alipay's own gateways.
    #[default]
    Direct,
    /// One acquirer's `unified.trade.*` gateway for WeChat, Alipay and
    /// UnionPay codes.
    Acquirer,
}

struct Till {
    sim: Simulator,
    providers: Vec<Provider>,
    scanner: crate::sim::pty::Pty,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start(wechat_api: WechatApi, route: DemoChannel) -> Result<Till, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    // One second of simulated customer time is 500 ms of wall time.
    let sim = Simulator::start(Duration::from_millis(500))
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let scanner = crate::sim::pty::Pty::open().map_err(|e| format!("virtual scanner: {e}"))?;
    let socket = dir.path().join("pos.sock");
    let delay = Duration::from_millis(3000);
    let wechat: Arc<dyn ChannelConfig> = match wechat_api {
        WechatApi::V2 => Arc::new(sim.wechat_config(delay)),
        WechatApi::V3 => Arc::new(
            sim.wechat_v3_config(delay)
                .map_err(|e| format!("simulator keys: {e}"))?,
        ),
    };
    let cfg = Config {
        till: TillConfig {
            id: "DEMOT1".into(),
            state_dir: dir.path().join("state"),
        },
        pos: PosConfig {
            socket: socket.clone(),
            socket_mode: 0o600,
            allowed_uids: vec![],
        },
        scanner: Some(ScannerConfig {
            device: scanner.path.clone(),
            baud: 9600,
            frame_gap: Duration::from_millis(50),
            kind: Default::default(),
        }),
        payment: demo_payment(),
        channels: match route {
            DemoChannel::Direct => vec![wechat, Arc::new(sim.alipay_config())],
            DemoChannel::Acquirer => vec![Arc::new(sim.acquirer_config(delay))],
        },
        routes: Vec::new(),
        web: None,
        hq: None,
    };
    let gateways = cfg.gateways().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = crate::daemon::run(cfg, gateways).await {
            eprintln!("demo daemon stopped: {e}");
        }
    });
    for _ in 0..100 {
        if Client::connect(&socket).await.is_ok() {
            let providers = match route {
                DemoChannel::Direct => vec![Provider::Wechat, Provider::Alipay],
                DemoChannel::Acquirer => Provider::ALL.to_vec(),
            };
            return Ok(Till {
                sim,
                providers,
                scanner,
                socket,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the demo daemon did not start".into())
}

pub async fn main(wechat_api: WechatApi, route: DemoChannel) -> ExitCode {
    let api = match wechat_api {
        WechatApi::V2 => "API v2",
        WechatApi::V3 => "API v3",
    };
    match route {
        DemoChannel::Direct => println!("tillpay demo — simulated WeChat Pay ({api}) and Alipay on this machine, a virtual scan gun, a temporary journal."),
        DemoChannel::Acquirer => println!("tillpay demo — a simulated acquirer's gateway (unified.trade.*) carrying WeChat Pay, Alipay and UnionPay codes, a virtual scan gun, a temporary journal."),
    }
    println!("Demo timings: polls every 1 s, revoke after 6 s unpaid (production: 5 s and 30 s); 1 simulated second = 0.5 s.");
    let till = match start(wechat_api, route).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tillpay demo: {e}");
            return ExitCode::from(1);
        }
    };
    if std::io::stdin().is_terminal() {
        interactive(till).await
    } else {
        scripted(till).await
    }
}

/// Prints the POS's view of one sale as it happens.
fn show(msg: &Value) {
    let p = &msg["params"];
    if msg["method"] == "scanner.event" {
        let extra = p["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        println!("    scanner {}{extra}", p["event"].as_str().unwrap_or("?"));
        return;
    }
    let event = p["event"].as_str().unwrap_or("?");
    let line = match event {
        "waiting_scan" => "waiting for the customer's code…".to_string(),
        "scanned" => format!(
            "scanned {} ({})",
            p["auth_code_masked"].as_str().unwrap_or("?"),
            p["provider"].as_str().unwrap_or("?")
        ),
        "submitted" => format!("submitted as {}", p["out_trade_no"].as_str().unwrap_or("?")),
        "user_paying" => format!(
            "customer confirming on the phone ({} s)",
            p["elapsed_ms"].as_u64().unwrap_or(0) / 1000
        ),
        "revoking" => "not paid in time: revoking…".to_string(),
        other => other.to_string(),
    };
    println!("    {line}");
}

/// One sale: the POS charges, the cashier scans `code`, the POS sees the end.
async fn sale(till: &mut Till, order: &str, amount: u64, code: &str) -> Result<Value, String> {
    let mut client = Client::connect(&till.socket)
        .await
        .map_err(|e| e.to_string())?;
    let socket = till.socket.clone();
    let order_owned = order.to_string();
    // The charge waits for the scan: send it from a second connection.
    let charge = tokio::spawn(async move {
        let mut c = Client::connect(&socket).await.map_err(|e| e.to_string())?;
        c.call(
            "charge",
            json!({"order_no": order_owned, "amount": amount, "subject": "demo sale"}),
            show,
        )
        .await
        .map_err(|e| e.to_string())
    });
    for _ in 0..100 {
        let s = client
            .call("status", json!({}), |_| {})
            .await
            .map_err(|e| e.to_string())?;
        if s["waiting_order"] == order {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    till.scanner
        .scan(code)
        .map_err(|e| format!("virtual scanner: {e}"))?;
    charge.await.map_err(|e| e.to_string())?
}

fn yuan(v: &Value) -> String {
    Fen(v.as_u64().unwrap_or(0)).to_yuan()
}

// A script: the demo's scenes in the order they are shown.
async fn scripted(mut till: Till) -> ExitCode {
    let mut plan = vec![
        (
            "WeChat Pay, pays at once",
            Provider::Wechat,
            Behaviour::PaysAtOnce,
            1234,
            "paid",
        ),
        (
            "Alipay, pays at once",
            Provider::Alipay,
            Behaviour::PaysAtOnce,
            880,
            "paid",
        ),
        (
            "WeChat Pay, confirms on the phone",
            Provider::Wechat,
            Behaviour::ConfirmsAfter(4),
            4500,
            "paid",
        ),
        (
            "Alipay, never confirms",
            Provider::Alipay,
            Behaviour::NeverConfirms,
            1999,
            "revoked",
        ),
        (
            "WeChat Pay, insufficient funds",
            Provider::Wechat,
            Behaviour::InsufficientFunds,
            30000,
            "failed",
        ),
    ];
    if till.providers.contains(&Provider::Unionpay) {
        plan.push((
            "UnionPay, pays at once",
            Provider::Unionpay,
            Behaviour::PaysAtOnce,
            2500,
            "paid",
        ));
    }
    let mut all_ok = true;
    for (i, (what, provider, behaviour, amount, want)) in plan.into_iter().enumerate() {
        let order = format!("DEMO{}", i + 1);
        println!("\nsale {order}: ¥{} — {what}", Fen(amount).to_yuan());
        let code = behaviour.code(provider, 1_000_000 + i as u64);
        let result = sale(&mut till, &order, amount, &code).await;
        let ok = match &result {
            Ok(p) => {
                let status = p["status"].as_str().unwrap_or("?");
                let kept = till
                    .sim
                    .ledger
                    .money_kept(p["out_trade_no"].as_str().unwrap_or(""));
                let money_ok =
                    (status == "paid") == (kept == amount) && (status == "paid" || kept == 0);
                println!(
                    "  => {} ¥{}{} via {}; the gateway kept ¥{}",
                    status.to_uppercase(),
                    yuan(&p["amount"]),
                    p["error"]["message"]
                        .as_str()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default(),
                    p["channel"].as_str().unwrap_or("?"),
                    Fen(kept).to_yuan()
                );
                status == want && money_ok
            }
            Err(e) => {
                println!("  => error: {e}");
                false
            }
        };
        if !ok {
            println!("  !! expected {want}");
            all_ok = false;
        }
    }
    if all_ok {
        println!("\nevery sale ended as scripted: paid exactly once, or no money kept.");
        ExitCode::SUCCESS
    } else {
        println!("\nsome sale did not end as scripted");
        ExitCode::from(1)
    }
}

async fn interactive(mut till: Till) -> ExitCode {
    println!("\nYou are the cashier. Ready-made payment codes (type or paste one when asked):");
    let mut codes = Vec::new();
    for provider in till.providers.clone() {
        for (i, b) in Behaviour::ALL.iter().enumerate() {
            let code = b.code(provider, 7_000_000 + i as u64);
            println!("  {:<7} {code}  {}", provider.as_str(), b.describe());
            codes.push(code);
        }
    }
    println!("Any other valid code pays at once. Codes are single-use, as real ones are: change the last digits to reuse one.");
    let stdin = std::io::stdin();
    let mut n = 0;
    loop {
        n += 1;
        print!("\namount in yuan (empty to quit): ");
        let _ = std::io::stdout().flush();
        let Some(Ok(amount)) = stdin.lock().lines().next() else {
            break;
        };
        let amount = amount.trim();
        if amount.is_empty() || amount == "q" {
            break;
        }
        let Ok(fen) = Fen::parse_yuan(amount, false) else {
            println!("  give yuan with at most two decimals, e.g. 12.34");
            continue;
        };
        print!("scan (type or paste the customer's code): ");
        let _ = std::io::stdout().flush();
        let Some(Ok(code)) = stdin.lock().lines().next() else {
            break;
        };
        let code = code.trim();
        if crate::gateway::recognise(code).is_none() {
            println!("  not a payment code (WeChat: 18 digits 10-15…, Alipay: 16-24 digits 25-30…): the scanner would ignore it");
            continue;
        }
        let order = format!("DEMO{n}");
        match sale(&mut till, &order, fen.0, code).await {
            Ok(p) => println!(
                "  => {} ¥{}{}",
                p["status"].as_str().unwrap_or("?").to_uppercase(),
                yuan(&p["amount"]),
                p["error"]["message"]
                    .as_str()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
            Err(e) => println!("  => {e}"),
        }
    }
    ExitCode::SUCCESS
}
