//! The `tillpay` command line (docs/operations.md).

mod client_cmds;
mod doctor;
mod journal_cmds;
mod reconcile_cmd;
mod shift_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

pub const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "tillpay",
    version,
    about = "WeChat Pay and Alipay payment codes at the till: scan, charge, poll, revoke, reconcile"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct ClientOpts {
    /// The daemon's POS socket.
    #[arg(long, env = "TILLPAY_SOCKET", default_value = "/run/tillpay/pos.sock")]
    socket: PathBuf,
    /// Print the result object as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (systemd runs it).
    Run {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Training/demo mode: simulated gateways, a virtual scanner, a whole sale.
    Demo {
        /// The WeChat Pay API the till speaks to the simulator.
        #[arg(long, value_enum, default_value_t = crate::sim::WechatApi::V2)]
        wechat_api: crate::sim::WechatApi,
        /// The route of the payments: the wallets' own gateways, or one
        /// acquirer's for WeChat, Alipay and UnionPay codes.
        #[arg(long, value_enum, default_value_t = crate::demo::DemoChannel::Direct)]
        channel: crate::demo::DemoChannel,
    },
    /// A till to develop a POS against: the daemon and the simulator, on a
    /// socket it prints, with its journal kept in a directory.
    Dev(crate::demo::dev::Args),
    /// Charge a sale: waits for a scan unless --typed is given.
    Charge {
        /// Amount in yuan, at most two decimals (12.34).
        #[arg(long)]
        amount: String,
        /// The sale's order number (generated when omitted).
        #[arg(long)]
        order: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        /// Take a payment code typed in by hand, from standard input (a
        /// prompt on a terminal): never on the command line, where `ps` and
        /// the shell's history would keep it.
        #[arg(long)]
        typed: bool,
        /// The cashier (1-32 of A-Z a-z 0-9 _ -), kept with the sale.
        #[arg(long)]
        operator: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show a sale as the journal has it.
    Query {
        order: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Cancel a sale: before a scan it ends cancelled, after one it is revoked.
    Cancel {
        order: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Refund part or all of a paid sale.
    Refund {
        order: String,
        /// The refund's own number: retry with the same one, never a new one.
        #[arg(long)]
        refund_no: String,
        /// Amount in yuan, at most two decimals.
        #[arg(long)]
        amount: String,
        #[arg(long)]
        reason: Option<String>,
        /// The cashier who refunds.
        #[arg(long)]
        operator: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// The daemon's state: scanner, waiting and in-flight sales.
    Status {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// The cashier's shift: its report (Z-report), or close it.
    #[command(subcommand)]
    Shift(shift_cmd::ShiftCommand),
    /// List a day's payments (default today).
    List {
        #[arg(long)]
        date: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Read the local journal; resolve attempts that need an operator.
    Journal(journal_cmds::JournalArgs),
    /// Next-day reconciliation against the gateways' bills.
    Reconcile(reconcile_cmd::Args),
    /// Check config, keys, scanner, socket, journal and gateways.
    Doctor {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

/// glibc gives each thread that allocates an arena of its own (up to eight
/// per core), each keeping freed memory resident; one is plenty for a
/// daemon that handles a sale at a time, and keeps its idle memory small.
fn limit_malloc_arenas() {
    // SAFETY: mallopt(3) sets an allocator parameter; called before any
    // other thread exists, with a documented parameter and value.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    limit_malloc_arenas();
    // Two workers: the till's work waits on the network and the disk, not
    // on the CPU; journal writes run on the blocking pool, kept small.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tillpay: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(cmd: Command) -> ExitCode {
    match cmd {
        Command::Run { config } => run(&config).await,
        Command::Demo {
            wechat_api,
            channel,
        } => crate::demo::main(wechat_api, channel).await,
        Command::Dev(args) => crate::demo::dev::main(args).await,
        Command::Charge {
            amount,
            order,
            subject,
            typed,
            operator,
            opts,
        } => client_cmds::charge(&opts, &amount, order, subject, typed, operator).await,
        Command::Query { order, opts } => client_cmds::order_call(&opts, "query", &order).await,
        Command::Cancel { order, opts } => client_cmds::order_call(&opts, "cancel", &order).await,
        Command::Refund {
            order,
            refund_no,
            amount,
            reason,
            operator,
            opts,
        } => client_cmds::refund(&opts, &order, &refund_no, &amount, reason, operator).await,
        Command::Status { opts } => client_cmds::status(&opts).await,
        Command::List { date, opts } => client_cmds::list(&opts, date).await,
        Command::Shift(cmd) => shift_cmd::main(cmd).await,
        Command::Journal(args) => journal_cmds::main(args).await,
        Command::Reconcile(args) => reconcile_cmd::main(args).await,
        Command::Doctor { config } => doctor::main(&config).await,
    }
}

async fn run(path: &std::path::Path) -> ExitCode {
    crate::logging::init();
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tillpay: config: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let gateways = match cfg.gateways() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("tillpay: config: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    match crate::daemon::run(cfg, gateways).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped");
            eprintln!("tillpay: {e}");
            ExitCode::from(1)
        }
    }
}
