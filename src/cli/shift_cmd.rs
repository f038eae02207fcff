//! `tillpay shift report|close`: the cashier's Z-report, from the daemon.

use std::process::ExitCode;

use serde_json::{json, Value};

use super::client_cmds::{call, output};
use super::ClientOpts;
use crate::domain::Fen;

#[derive(clap::Subcommand)]
pub enum ShiftCommand {
    /// The running shift's report (or a closed one's, with --shift).
    Report {
        /// A closed shift's number: its report as kept when it closed.
        #[arg(long)]
        shift: Option<u64>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Close the running shift: print its report, keep it, open the next.
    Close {
        #[command(flatten)]
        opts: ClientOpts,
    },
}

pub async fn main(cmd: ShiftCommand) -> ExitCode {
    let (opts, method, params) = match &cmd {
        ShiftCommand::Report { shift, opts } => (
            opts,
            "shift.report",
            shift.map_or_else(|| json!({}), |n| json!({"shift_no": n})),
        ),
        ShiftCommand::Close { opts } => (opts, "shift.close", json!({})),
    };
    match call(opts, method, params, "").await {
        Ok(r) => {
            output(opts, &r, print_report);
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn yuan(v: &Value) -> String {
    Fen(v.as_u64().unwrap_or(0)).to_yuan()
}

fn tally(name: &str, t: &Value) {
    println!("{name:<20} {:>5}  ¥{:>12}", t["count"], yuan(&t["amount"]));
}

/// The report as a cashier reads it off the screen or a slip.
fn print_report(r: &Value) {
    let closed = r["closed_at"].as_str();
    println!(
        "till {}  shift {}  {}",
        r["till_id"].as_str().unwrap_or("?"),
        r["shift_no"],
        if closed.is_some() {
            "CLOSED"
        } else {
            "running"
        }
    );
    println!("opened  {}", r["opened_at"].as_str().unwrap_or("?"));
    if let Some(c) = closed {
        println!("closed  {c}");
    }
    if let (Some(f), Some(l)) = (r["first_sale"].as_str(), r["last_sale"].as_str()) {
        println!("sales from {f} to {l}");
    }
    tally("paid sales", &r["sales"]);
    tally("refunds", &r["refunds"]);
    tally("refunds processing", &r["refunds_processing"]);
    tally("revoked", &r["revoked"]);
    println!("{:<20} {:>5}", "failed", r["failed"]);
    let net = r["sales"]["amount"].as_u64().unwrap_or(0) as i128
        - r["refunds"]["amount"].as_u64().unwrap_or(0) as i128;
    println!("{:<20} {:>5}  ¥{:>12}", "net", "", signed_yuan(net));
    for (title, key) in [
        ("by provider", "by_provider"),
        ("by cashier", "by_operator"),
    ] {
        println!("{title}:");
        for (name, s) in r[key].as_object().into_iter().flatten() {
            let name = if name.is_empty() { "(none)" } else { name };
            println!(
                "  {name:<18} {:>5}  ¥{:>12}  refunded ¥{}",
                s["count"],
                yuan(&s["amount"]),
                yuan(&s["refunded"])
            );
        }
    }
    if r["in_flight"].as_u64().unwrap_or(0) > 0 {
        println!("STILL IN FLIGHT: {} sale(s)", r["in_flight"]);
    }
    let orders: Vec<&str> = r["needs_attention_orders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !orders.is_empty() {
        println!(
            "NEEDS AN OPERATOR: {} ({}): see `tillpay journal attention`",
            orders.len(),
            orders.join(", ")
        );
    }
    if let Some(n) = r["next_shift_no"].as_i64() {
        println!("shift {n} is open");
    }
}

fn signed_yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}", Fen(fen.unsigned_abs() as u64).to_yuan())
}
