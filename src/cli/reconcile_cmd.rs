//! `tillpay reconcile`: exit 0 when nothing differs, 1 when something
//! does, 2 when it could not run (payment-rules.md §20).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::domain::Provider;
use crate::gateway::channel::Channel;
use crate::gateway::BillAnswer;
use crate::gateway::CHANNELS;
use crate::journal::Journal;
use crate::reconcile::{matching, report, Bill};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// The day to reconcile, YYYY-MM-DD (local time).
    #[arg(long)]
    pub date: String,
    #[command(flatten)]
    pub bills: BillFiles,
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

/// `--<channel>-bill FILE` for each registered channel (`--wechat-bill`,
/// `--alipay-bill`): the bill from a file instead of the gateway.
#[derive(Debug, Default)]
pub struct BillFiles(Vec<(&'static str, PathBuf)>);

fn bill_flag(channel: &str) -> String {
    format!("{channel}-bill")
}

impl clap::FromArgMatches for BillFiles {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let files = CHANNELS
            .iter()
            .filter_map(|ch| {
                let file = m.get_one::<PathBuf>(&bill_flag(ch.name()))?;
                Some((ch.name(), file.clone()))
            })
            .collect();
        Ok(BillFiles(files))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for BillFiles {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        CHANNELS.iter().fold(cmd, |cmd, ch| {
            let flag = bill_flag(ch.name());
            cmd.arg(
                clap::Arg::new(flag.clone())
                    .long(flag)
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help(format!("{}; else downloaded", ch.bill_help())),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn parse(name: &str, bytes: &[u8], till: &str) -> Result<Bill, String> {
    let ch = crate::gateway::channel(name).ok_or_else(|| format!("{name}: no such channel"))?;
    ch.parse_bill(&mut Cursor::new(bytes), till)
        .map_err(|e| e.to_string())
}

/// Streamed: a million-row bill is never held whole.
fn parse_path(name: &str, path: &Path, till: &str) -> Result<Bill, String> {
    let ch = crate::gateway::channel(name).ok_or_else(|| format!("{name}: no such channel"))?;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ch.parse_bill(&mut f, till).map_err(|e| e.to_string())
}

/// A channel's bill as one bill per provider it carries: reconciliation
/// matches each provider's rows with the journal's.
fn by_provider(ch: &dyn Channel, bill: Bill) -> Vec<(Provider, Bill)> {
    ch.carries()
        .iter()
        .map(|p| {
            let rows = bill
                .rows
                .iter()
                .filter(|r| r.provider == *p)
                .cloned()
                .collect();
            let part = Bill {
                rows,
                other_tills: bill.other_tills,
                total_rows: bill.total_rows,
            };
            (*p, part)
        })
        .collect()
}

// Long because it reports each way a bill can be missing in words a shop owner can act on.
pub async fn main(args: Args) -> ExitCode {
    if chrono::NaiveDate::parse_from_str(&args.date, "%Y-%m-%d").is_err() {
        return fail(format!("--date {:?}: give YYYY-MM-DD", args.date));
    }
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(format!("config: {e}")),
    };
    let till = cfg.till.id.clone();
    // Each channel of the config, and any whose bill file is given: from
    // the file when given, else downloaded. A file for one channel never
    // leaves the other unchecked.
    let wanted: Vec<(&'static dyn Channel, Option<&PathBuf>)> = CHANNELS
        .iter()
        .copied()
        .filter_map(|ch| {
            let file = args
                .bills
                .0
                .iter()
                .find(|(n, _)| *n == ch.name())
                .map(|(_, f)| f);
            (cfg.channel(ch.name()).is_some() || file.is_some()).then_some((ch, file))
        })
        .collect();
    let mut gateways = None;
    let mut bills = Vec::new();
    for (ch, file) in wanted {
        let p = ch.name();
        if let Some(path) = file {
            match parse_path(p, path, &till) {
                Ok(b) => bills.extend(by_provider(ch, b)),
                Err(e) => return fail(e),
            }
            continue;
        }
        if gateways.is_none() {
            match cfg.gateways() {
                Ok(g) => gateways = Some(g),
                Err(e) => return fail(format!("config: {e}")),
            }
        }
        let Some(gw) = gateways.iter().flatten().find(|g| g.channel() == p) else {
            continue;
        };
        match gw.bill(&args.date).await {
            BillAnswer::File(bytes) => match parse(p, &bytes, &till) {
                Ok(b) => bills.extend(by_provider(ch, b)),
                Err(e) => return fail(e),
            },
            BillAnswer::NoBill(n) => {
                eprintln!("{p}: no bill exists for {} ({}): no trades that day", args.date, n.message);
                bills.extend(by_provider(ch, Bill::default()));
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
    let journal = match Journal::open(&path, &till) {
        Ok(j) => j,
        Err(e) => return fail(e),
    };
    let local = (|| {
        let (mut attempts, mut refunds) = (
            journal.attempts_on(&args.date)?,
            journal.refunds_on(&args.date)?,
        );
        // An archived day: its sales are in its month's file.
        let month = args.date.get(..7).unwrap_or_default();
        let file = crate::journal::archive_file(&crate::journal::archive_dir(&path), month);
        if file.exists() {
            // A sale in both (a run stopped between writing the archive and
            // deleting, or one that changed meanwhile): the live one counts.
            let a = crate::journal::open_archive(&file)?;
            let live: std::collections::HashSet<String> =
                attempts.iter().map(|x| x.out_trade_no.clone()).collect();
            let live_refunds: std::collections::HashSet<String> =
                refunds.iter().map(|(_, r)| r.refund_no.clone()).collect();
            attempts.extend(
                a.journal
                    .attempts_on(&args.date)?
                    .into_iter()
                    .filter(|x| !live.contains(&x.out_trade_no)),
            );
            refunds.extend(
                a.journal
                    .refunds_on(&args.date)?
                    .into_iter()
                    .filter(|(_, r)| !live_refunds.contains(&r.refund_no)),
            );
        }
        Ok::<_, crate::journal::JournalError>((attempts, refunds))
    })();
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
        // Clean: the day may leave the live journal once old enough.
        if let Err(e) = journal.mark_reconciled(&args.date, r.matched) {
            eprintln!("tillpay reconcile: could not record the clean day: {e}");
        }
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
