//! `tillpay charge|query|cancel|refund|status|list`: clients of the POS
//! socket. Human output by default, `--json` for machines; exit 0 success
//! (`charge`: paid), 1 a clean negative answer, 2 usage or connection error.

use std::io::IsTerminal;
use std::process::ExitCode;

use serde_json::{json, Value};

use super::ClientOpts;
use crate::domain::Fen;
use crate::pos::client::{Client, ClientError};

fn usage(msg: &str) -> ExitCode {
    eprintln!("tillpay: {msg}");
    ExitCode::from(2)
}

fn yuan(fen: Option<u64>) -> String {
    fen.map_or_else(|| "?".into(), |f| Fen(f).to_yuan())
}

/// Live progress for a person at a terminal.
fn progress(order: &str) -> impl FnMut(&Value) {
    let show = std::io::stderr().is_terminal();
    let order = order.to_string();
    move |msg: &Value| {
        if !show {
            return;
        }
        let p = &msg["params"];
        if msg["method"] == "scanner.event" {
            if p["event"] == "ignored" {
                eprintln!(
                    "  scanner: ignored ({})",
                    p["reason"].as_str().unwrap_or("")
                );
            }
            return;
        }
        if p["order_no"].as_str() != Some(order.as_str()) {
            return;
        }
        let secs = p["elapsed_ms"].as_u64().unwrap_or(0) / 1000;
        let line = match p["event"].as_str().unwrap_or("") {
            "waiting_scan" => "waiting for scan…".to_string(),
            "scanned" => format!(
                "scanned {} ({})",
                p["auth_code_masked"].as_str().unwrap_or("?"),
                p["provider"].as_str().unwrap_or("?")
            ),
            "submitted" => "submitted to the gateway…".to_string(),
            "user_paying" => format!("customer confirming on phone {secs} s"),
            "revoking" => "revoking…".to_string(),
            _ => return,
        };
        eprintln!("  {line}");
    }
}

pub(super) async fn call(
    opts: &ClientOpts,
    method: &str,
    params: Value,
    order: &str,
) -> Result<Value, ExitCode> {
    let mut client = Client::connect(&opts.socket)
        .await
        .map_err(|e| usage(&e.to_string()))?;
    client
        .call(method, params, progress(order))
        .await
        .map_err(|e| match e {
            // payment_unresolved: not a clean "not paid". The code may have
            // been charged, so exit as when no answer came (2), never 1.
            ClientError::Rpc { code: 1007, message } => {
                eprintln!("tillpay: {message}");
                eprintln!("tillpay: the outcome is not known yet: query {order} later; take no other payment for it");
                ExitCode::from(2)
            }
            ClientError::Rpc { code, message } if code > 0 => {
                eprintln!("tillpay: {message}");
                ExitCode::from(1)
            }
            other => usage(&other.to_string()),
        })
}

fn print_payment(p: &Value) {
    let status = p["status"].as_str().unwrap_or("?");
    let mut line = format!(
        "{} {} ¥{} {}",
        p["order_no"].as_str().unwrap_or("?"),
        status.to_uppercase(),
        yuan(p["amount"].as_u64()),
        p["provider"].as_str().unwrap_or("")
    );
    if let Some(t) = p["transaction_id"].as_str() {
        line.push_str(&format!(" transaction {t}"));
    }
    if let Some(d) = p["receipt"]["discount"].as_u64().filter(|d| *d > 0) {
        line.push_str(&format!(
            " (customer paid ¥{}, discount ¥{})",
            yuan(p["receipt"]["customer_paid"].as_u64()),
            yuan(Some(d))
        ));
    }
    if let Some(o) = p["operator_id"].as_str() {
        line.push_str(&format!(" cashier {o}"));
    }
    if let Some(r) = p["refunded_amount"].as_u64().filter(|r| *r > 0) {
        line.push_str(&format!(" refunded ¥{}", yuan(Some(r))));
    }
    if let Some(e) = p["error"].as_object() {
        line.push_str(&format!(
            " — {} {}",
            e.get("code").and_then(Value::as_str).unwrap_or(""),
            e.get("message").and_then(Value::as_str).unwrap_or("")
        ));
    }
    println!("{line}");
}

pub(super) fn output(opts: &ClientOpts, v: &Value, human: impl Fn(&Value)) {
    if opts.json {
        println!("{v}");
    } else {
        human(v);
    }
}

pub async fn charge(
    opts: &ClientOpts,
    amount: &str,
    order: Option<String>,
    subject: Option<String>,
    typed: bool,
    operator: Option<String>,
) -> ExitCode {
    let Ok(fen) = Fen::parse_yuan(amount, false) else {
        return usage(&format!(
            "--amount {amount:?}: give yuan with at most two decimals, e.g. 12.34"
        ));
    };
    let order =
        order.unwrap_or_else(|| chrono::Local::now().format("P%Y%m%d%H%M%S%3f").to_string());
    let mut params = json!({"order_no": order, "amount": fen.0});
    if let Some(s) = subject {
        params["subject"] = json!(s);
    }
    if let Some(o) = operator {
        params["operator_id"] = json!(o);
    }
    if typed {
        match read_typed_code() {
            Ok(c) => params["auth_code"] = json!(c),
            Err(e) => return usage(&e),
        }
    }
    match call(opts, "charge", params, &order).await {
        Ok(p) => {
            output(opts, &p, print_payment);
            if p["status"] == "paid" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(code) => code,
    }
}

/// One line from standard input: the payment code the cashier typed.
fn read_typed_code() -> Result<String, String> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("payment code: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("--typed: cannot read the code from standard input: {e}"))?;
    let code = line.trim().to_string();
    if code.is_empty() {
        return Err("--typed: no payment code on standard input".into());
    }
    Ok(code)
}

pub async fn order_call(opts: &ClientOpts, method: &str, order: &str) -> ExitCode {
    match call(opts, method, json!({"order_no": order}), order).await {
        Ok(p) => {
            output(opts, &p, print_payment);
            // A cancel succeeded when no money is kept: cancelled, revoked,
            // or it had failed anyway. Paid or needs_attention: it did not.
            let kept = !matches!(
                p["status"].as_str(),
                Some("cancelled" | "revoked" | "failed")
            );
            if method == "cancel" && kept {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub async fn refund(
    opts: &ClientOpts,
    order: &str,
    refund_no: &str,
    amount: &str,
    reason: Option<String>,
    operator: Option<String>,
) -> ExitCode {
    let Ok(fen) = Fen::parse_yuan(amount, false) else {
        return usage(&format!(
            "--amount {amount:?}: give yuan with at most two decimals"
        ));
    };
    let mut params = json!({"order_no": order, "refund_no": refund_no, "amount": fen.0});
    if let Some(r) = reason {
        params["reason"] = json!(r);
    }
    if let Some(o) = operator {
        params["operator_id"] = json!(o);
    }
    match call(opts, "refund", params, order).await {
        Ok(r) => {
            output(opts, &r, |r| {
                println!(
                    "{} refund {} ¥{} {}",
                    r["order_no"].as_str().unwrap_or("?"),
                    r["refund_no"].as_str().unwrap_or("?"),
                    yuan(r["amount"].as_u64()),
                    r["status"].as_str().unwrap_or("?").to_uppercase()
                )
            });
            if r["status"] == "failed" {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(code) => code,
    }
}

pub async fn status(opts: &ClientOpts) -> ExitCode {
    match call(opts, "status", json!({}), "").await {
        Ok(s) => {
            output(opts, &s, |s| {
                println!(
                    "till {} (tillpay {})",
                    s["till_id"].as_str().unwrap_or("?"),
                    s["version"].as_str().unwrap_or("?")
                );
                match s["scanner"]["device"].as_str() {
                    Some(d) => println!(
                        "scanner {d}: {}",
                        if s["scanner"]["connected"] == true {
                            "connected"
                        } else {
                            "NOT connected"
                        }
                    ),
                    None => println!("scanner: none configured"),
                }
                println!(
                    "waiting for scan: {}",
                    s["waiting_order"].as_str().unwrap_or("no")
                );
                println!("in flight: {}", s["in_flight"]);
                println!("needs attention: {}", s["needs_attention"]);
                if let Some(hq) = s.get("hq").filter(|h| !h.is_null()) {
                    match hq["failing"].as_str() {
                        Some(why) => println!(
                            "HQ sync: failing ({why}); HQ has events up to {}",
                            hq["high_water"]
                        ),
                        None => println!("HQ sync: HQ has events up to {}", hq["high_water"]),
                    }
                }
            });
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub async fn list(opts: &ClientOpts, date: Option<String>) -> ExitCode {
    let params = match date {
        Some(d) => json!({"date": d}),
        None => json!({}),
    };
    match call(opts, "list", params, "").await {
        Ok(list) => {
            output(opts, &list, |l| {
                for p in l.as_array().into_iter().flatten() {
                    print_payment(p);
                }
            });
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
