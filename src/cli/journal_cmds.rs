//! `tillpay journal list|show|attention|resolve`: the operator's view of
//! the local journal, read directly from the SQLite file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config::{self, Config};
use crate::engine::resolve::{self, ResolveRequest};
use crate::engine::Payment;
use crate::journal::Journal;
use crate::machine::Phase;
use crate::pos::client::{Client, ClientError};
use serde_json::json;

#[derive(Args)]
pub struct JournalArgs {
    /// Where the journal lives: the config's till.state_dir …
    #[arg(long, global = true, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// … or the state directory itself.
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// The daemon's POS socket (default: the config's pos.socket): a
    /// resolve goes through the running daemon, which owns the order.
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: JournalCommand,
}

#[derive(Subcommand)]
enum JournalCommand {
    /// A day's payments (default today).
    List {
        #[arg(long)]
        date: Option<String>,
    },
    /// One order with its full history.
    Show { order: String },
    /// Attempts that need an operator.
    Attention,
    /// Move settled history out of the live journal: the sales of days
    /// reconciled clean and older than the refund window go to one
    /// compressed file per month (archive/YYYY-MM.sqlite.gz), which
    /// `journal show` and `reconcile` still read.
    Archive {
        /// Only this month (YYYY-MM); default every month with old days.
        #[arg(long)]
        month: Option<String>,
        /// Keep the last this many days live: a sale can be refunded for a
        /// year at WeChat Pay, and a refund needs its sale in the journal.
        #[arg(long, default_value_t = 366)]
        keep_days: u32,
    },
    /// Record an operator's verdict after checking with the gateway.
    Resolve {
        order: String,
        /// What the gateway (merchant portal) shows.
        #[arg(long = "as", value_parser = ["paid", "unpaid"])]
        verdict: String,
        /// Why: what was checked, where.
        #[arg(long)]
        note: String,
        /// Who checked (default: $SUDO_USER or $USER).
        #[arg(long)]
        operator: Option<String>,
        /// With --as paid, when the gateway never named the payment: its id
        /// in the merchant portal (WeChat 微信订单号 / Alipay 支付宝交易号).
        #[arg(long)]
        transaction_id: Option<String>,
        /// With --as paid, when the gateway never said when: the payment
        /// time the portal shows (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local).
        #[arg(long)]
        paid_at: Option<String>,
    },
}

fn open(args: &JournalArgs) -> Result<Journal, String> {
    let (dir, till) = match &args.state_dir {
        Some(d) => (d.clone(), "local".to_string()),
        None => {
            let cfg = Config::load(&args.config).map_err(|e| format!("config: {e}"))?;
            (cfg.till.state_dir.clone(), cfg.till.id.clone())
        }
    };
    let path = dir.join("journal.sqlite");
    if !path.exists() {
        return Err(format!("no journal at {}", path.display()));
    }
    Journal::open(&path, &till).map_err(|e| e.to_string())
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| ms.to_string())
}

pub async fn main(args: JournalArgs) -> ExitCode {
    if let JournalCommand::Resolve {
        order,
        verdict,
        note,
        operator,
        transaction_id,
        paid_at,
    } = &args.command
    {
        let req = ResolveRequest {
            order_no: order.clone(),
            as_paid: verdict == "paid",
            transaction_id: transaction_id.clone(),
            paid_at: paid_at.clone(),
            operator: operator
                .clone()
                .or_else(|| std::env::var("SUDO_USER").ok())
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "operator".into()),
            note: note.clone(),
        };
        return resolve(&args, req).await;
    }
    let j = match open(&args) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("tillpay journal: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match &args.command {
        JournalCommand::List { date } => list(&j, date.clone()),
        JournalCommand::Show { order } => show(&j, order),
        JournalCommand::Attention => attention(&j),
        JournalCommand::Archive { month, keep_days } => {
            archive(&j, &args, month.clone(), *keep_days)
        }
        JournalCommand::Resolve { .. } => Ok(ExitCode::from(2)),
    };
    r.unwrap_or_else(|e| {
        eprintln!("tillpay journal: {e}");
        ExitCode::from(1)
    })
}

/// The daemon's socket, from `--socket` or the config.
fn socket_of(args: &JournalArgs) -> Option<PathBuf> {
    args.socket.clone().or_else(|| {
        args.state_dir
            .is_none()
            .then(|| Config::load(&args.config).ok().map(|c| c.pos.socket))
            .flatten()
    })
}

/// A verdict goes through the running daemon, which owns the order; with
/// no daemon running, it is applied to the journal by the same rules.
async fn resolve(args: &JournalArgs, req: ResolveRequest) -> ExitCode {
    let verdict = if req.as_paid { "paid" } else { "unpaid" };
    if let Some(socket) = socket_of(args) {
        match Client::connect(&socket).await {
            Ok(mut c) => {
                let params = json!({
                    "order_no": req.order_no, "as": verdict, "note": req.note,
                    "operator": req.operator, "transaction_id": req.transaction_id,
                    "paid_at": req.paid_at,
                });
                return match c.call("resolve", params, |_| {}).await {
                    Ok(p) => {
                        println!(
                            "{}: resolved as {verdict} by {} (through the daemon); now {}",
                            req.order_no,
                            req.operator,
                            p["status"].as_str().unwrap_or("?")
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("tillpay journal: {e}");
                        ExitCode::from(1)
                    }
                };
            }
            Err(ClientError::Connect { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => {
                // A daemon may be running that this user cannot reach:
                // never write its journal behind its back.
                eprintln!("tillpay journal: {e}; run as a user allowed on the socket");
                return ExitCode::from(2);
            }
        }
    }
    let j = match open(args) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("tillpay journal: {e}");
            return ExitCode::from(2);
        }
    };
    match resolve::offline(&j, &req) {
        Ok((row, _)) => {
            println!(
                "{}: attempt {} resolved as {verdict} by {}",
                req.order_no, row.out_trade_no, req.operator
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tillpay journal: {e}");
            ExitCode::from(1)
        }
    }
}

fn list(j: &Journal, date: Option<String>) -> Result<ExitCode, String> {
    let date = date.unwrap_or_else(|| chrono::Local::now().format("%Y-%m-%d").to_string());
    let day = j.day(&date).map_err(|e| e.to_string())?;
    println!("{date}: {} sale(s)", day.len());
    for (sale, attempts) in day {
        let refunds = j.refunds_of(&sale.order_no).map_err(|e| e.to_string())?;
        let p = Payment::build(&sale, &attempts, &refunds, crate::engine::view::Live::Idle);
        println!(
            "  {:<24} {:>10} {:<16} {:<8} {:<12} {}",
            p.order_no,
            crate::domain::Fen(p.amount).to_yuan(),
            serde_json::to_value(p.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            p.provider.map(|p| p.as_str()).unwrap_or("-"),
            p.operator_id.as_deref().unwrap_or("-"),
            p.out_trade_no.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn state_dir(args: &JournalArgs) -> Result<PathBuf, String> {
    match &args.state_dir {
        Some(d) => Ok(d.clone()),
        None => Config::load(&args.config)
            .map(|c| c.till.state_dir)
            .map_err(|e| format!("config: {e}")),
    }
}

fn archive(
    j: &Journal,
    args: &JournalArgs,
    month: Option<String>,
    keep_days: u32,
) -> Result<ExitCode, String> {
    if keep_days < 90 {
        return Err("--keep-days: at least 90 (the gateways take refunds for months)".into());
    }
    let before = (chrono::Local::now() - chrono::Duration::days(i64::from(keep_days)))
        .format("%Y-%m-%d")
        .to_string();
    let dir = crate::journal::archive_dir(&state_dir(args)?.join("journal.sqlite"));
    let months = match month {
        Some(m) if chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok() => {
            vec![m]
        }
        Some(m) => return Err(format!("--month {m:?}: give YYYY-MM")),
        None => j.months_before(&before).map_err(|e| e.to_string())?,
    };
    if months.is_empty() {
        println!("nothing older than {before} to archive");
    }
    for m in months {
        let done = j
            .archive_month(&m, &before, &dir)
            .map_err(|e| e.to_string())?;
        println!(
            "{m}: {} sale(s) moved to {} (days reconciled clean, before {before}, settled)",
            done.sales,
            done.file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The monthly archives beside the journal, newest first.
pub(super) fn archives(journal: &std::path::Path) -> Vec<PathBuf> {
    let dir = crate::journal::archive_dir(journal);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".sqlite.gz"))
        .collect();
    files.sort();
    files.reverse();
    files
}

fn show(j: &Journal, order: &str) -> Result<ExitCode, String> {
    if j.sale(order).map_err(|e| e.to_string())?.is_none() {
        // Not live: perhaps archived.
        for file in archives(j.path()) {
            let a = crate::journal::open_archive(&file).map_err(|e| e.to_string())?;
            if a.journal.sale(order).map_err(|e| e.to_string())?.is_some() {
                println!("(archived in {})", file.display());
                return show_one(&a.journal, order);
            }
        }
    }
    show_one(j, order)
}

fn show_one(j: &Journal, order: &str) -> Result<ExitCode, String> {
    let Some((sale, attempts)) = j.sale(order).map_err(|e| e.to_string())? else {
        return Err(format!("no order {order} in the journal or its archives"));
    };
    println!(
        "order {} ¥{} {:?} created {}{}{}",
        sale.order_no,
        sale.amount.to_yuan(),
        sale.subject,
        when(sale.created_at),
        sale.operator_id
            .as_ref()
            .map(|o| format!(" by cashier {o}"))
            .unwrap_or_default(),
        if sale.cancelled { " (cancelled)" } else { "" }
    );
    for a in &attempts {
        println!(
            "  attempt {} {} {} via {} code {} submitted {} phase {}{}{}",
            a.seq,
            a.out_trade_no,
            a.provider,
            a.channel,
            a.code_masked,
            when(a.submitted_at),
            a.state.phase.as_str(),
            a.transaction_id
                .as_ref()
                .map(|t| format!(" transaction {t}"))
                .unwrap_or_default(),
            a.error
                .as_ref()
                .map(|e| format!(" — {} {}", e.code, e.message))
                .unwrap_or_default()
        );
    }
    for r in j.refunds_of(order).map_err(|e| e.to_string())? {
        println!(
            "  refund {} ¥{} {}{}",
            r.refund_no,
            r.amount.to_yuan(),
            r.status.as_str(),
            r.operator_id
                .as_ref()
                .map(|o| format!(" by cashier {o}"))
                .unwrap_or_default()
        );
    }
    println!("history:");
    for e in j.events(order).map_err(|e| e.to_string())? {
        println!(
            "  {} {:<18} {} {}",
            when(e.at),
            e.kind,
            e.out_trade_no.unwrap_or_default(),
            // A paid event that reached paid, with nothing more, is "{}".
            if e.detail == "{}" { "" } else { &e.detail }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn attention(j: &Journal) -> Result<ExitCode, String> {
    let rows = j.attention().map_err(|e| e.to_string())?;
    if rows.is_empty() {
        println!("nothing needs attention");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} attempt(s) need an operator: check each with the gateway, then `tillpay journal resolve ORDER --as paid|unpaid --note ...`", rows.len());
    for a in rows {
        debug_assert_eq!(a.state.phase, Phase::NeedsAttention);
        let behind = if a.state.background_revoke {
            " — tillpay is still revoking it in the background (for 24 h after the sale); \
             a revoke that lands settles it"
        } else {
            ""
        };
        println!(
            "  {} {} {} ¥{} submitted {} revoke tries {}{}{behind}",
            a.order_no,
            a.out_trade_no,
            a.provider,
            a.amount.to_yuan(),
            when(a.submitted_at),
            a.state.revoke_tries,
            a.error
                .as_ref()
                .map(|e| format!(" — last answer {} {}", e.code, e.message))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::from(1))
}
