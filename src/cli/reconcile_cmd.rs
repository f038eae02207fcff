//! `tillpay reconcile`: exit 0 when nothing differs, 1 when something
//! does, 2 when it could not run (payment-rules.md §20).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::domain::Provider;
use crate::gateway::BillAnswer;
use crate::journal::Journal;
use crate::reconcile::{alipay_bill, matching, report, wechat_bill, Bill};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// The day to reconcile, YYYY-MM-DD (local time).
    #[arg(long)]
    pub date: String,
    /// WeChat's `downloadbill` text (bill_type ALL); else downloaded.
    #[arg(long)]
    pub wechat_bill: Option<PathBuf>,
    /// Alipay's bill zip, or the detail CSV inside it; else downloaded.
    #[arg(long)]
    pub alipay_bill: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    /// Also write the discrepancies as CSV, for the accountant.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("tillpay reconcile: {msg}");
    ExitCode::from(2)
}

fn parse(provider: Provider, bytes: &[u8], till: &str) -> Result<Bill, String> {
    match provider {
        Provider::Wechat => {
            wechat_bill::parse(BufReader::new(bytes), till).map_err(|e| e.to_string())
        }
        Provider::Alipay => alipay_bill::parse_file(bytes, till).map_err(|e| e.to_string()),
    }
}

fn parse_path(provider: Provider, path: &Path, till: &str) -> Result<Bill, String> {
    match provider {
        // Streamed: a million-row bill is never held whole.
        Provider::Wechat => {
            let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            wechat_bill::parse(BufReader::with_capacity(1 << 16, f), till)
                .map_err(|e| e.to_string())
        }
        Provider::Alipay => {
            let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            alipay_bill::parse_reader(f, till).map_err(|e| e.to_string())
        }
    }
}

pub async fn main(args: Args) -> ExitCode {
    if chrono::NaiveDate::parse_from_str(&args.date, "%Y-%m-%d").is_err() {
        return fail(format!("--date {:?}: give YYYY-MM-DD", args.date));
    }
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(format!("config: {e}")),
    };
    let till = cfg.till.id.clone();
    // Each provider of the config, and any whose bill file is given: from
    // the file when given, else downloaded. A file for one provider never
    // leaves the other unchecked.
    let wanted: Vec<(Provider, Option<&PathBuf>)> = [
        (
            Provider::Wechat,
            cfg.wechat.is_some(),
            args.wechat_bill.as_ref(),
        ),
        (
            Provider::Alipay,
            cfg.alipay.is_some(),
            args.alipay_bill.as_ref(),
        ),
    ]
    .into_iter()
    .filter(|(_, configured, file)| *configured || file.is_some())
    .map(|(p, _, file)| (p, file))
    .collect();
    let mut gateways = None;
    let mut bills = Vec::new();
    for (p, file) in wanted {
        if let Some(path) = file {
            match parse_path(p, path, &till) {
                Ok(b) => bills.push((p, b)),
                Err(e) => return fail(e),
            }
            continue;
        }
        if gateways.is_none() {
            match crate::gateway::from_config(&cfg) {
                Ok(g) => gateways = Some(g),
                Err(e) => return fail(format!("config: {e}")),
            }
        }
        let Some(gw) = gateways.iter().flatten().find(|g| g.provider() == p) else {
            continue;
        };
        match gw.bill(&args.date).await {
            BillAnswer::File(bytes) => match parse(p, &bytes, &till) {
                Ok(b) => bills.push((p, b)),
                Err(e) => return fail(e),
            },
            BillAnswer::NoBill(n) => {
                eprintln!("{p}: no bill exists for {} ({}): no trades that day", args.date, n.message);
                bills.push((p, Bill::default()));
            }
            BillAnswer::NotYet(n) => {
                return fail(format!(
                    "{p}: the bill for {} is not ready yet ({}); bills are ready after 10:00 the next day",
                    args.date, n.message
                ))
            }
            BillAnswer::Failed(n) => return fail(format!("{p}: cannot download the bill: {} {}", n.code, n.message)),
        }
    }
    let path = cfg.till.journal_path();
    if !path.exists() {
        return fail(format!("no journal at {}", path.display()));
    }
    let local = Journal::open(&path, &till)
        .and_then(|j| Ok((j.attempts_on(&args.date)?, j.refunds_on(&args.date)?)));
    let (attempts, refunds) = match local {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let r = matching::reconcile(&args.date, &attempts, &refunds, &bills);
    if let Some(csv) = &args.csv {
        if let Err(e) = std::fs::write(csv, report::csv(&r)) {
            return fail(format!("{}: {e}", csv.display()));
        }
    }
    if args.json {
        println!("{}", report::json(&r));
    } else {
        print!("{}", report::table(&r, &till));
    }
    if r.discrepancies.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
