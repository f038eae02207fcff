//! `tillpay-hq`: serve, migrate, register tills.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tillpay_hq::{config::Config, db, http, tills};

#[derive(Parser)]
#[command(
    name = "tillpay-hq",
    version,
    about = "The merchant's HQ for tillpay tills"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const DEFAULT_CONFIG: &str = "/etc/tillpay-hq/tillpay-hq.toml";

#[derive(Subcommand)]
enum Command {
    /// Serve tills' sync and the fleet API (migrates the schema first).
    Serve {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Bring the database's schema up to this version and exit.
    Migrate {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// The merchant's bills of one day against every till's rows: exit 0
    /// when all match, 1 when something differs, 2 when it cannot run.
    Reconcile {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The bills' day, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// A channel's bill from a file instead of its gateway:
        /// `--bill wechat=FILE` (repeatable).
        #[arg(long, value_name = "CHANNEL=FILE")]
        bill: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Tills and their tokens.
    Till {
        #[command(subcommand)]
        command: TillCommand,
    },
    /// The console's accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Add an account, or give one a new role and password (its sessions
    /// end). The password is read from standard input, one line, so it
    /// never stands on a command line.
    Set {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        user: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
enum TillCommand {
    /// Register a till of a store (made if new) and write its new token to
    /// a file (mode 0600) for the till's `[hq] token_file`. Run again to
    /// replace a till's token.
    Add {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        store: String,
        #[arg(long)]
        till: String,
        #[arg(long)]
        token_file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    tillpay::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tillpay-hq: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    if let Command::Reconcile {
        config,
        date,
        bill,
        json,
    } = cli.command
    {
        return runtime.block_on(reconcile(&config, &date, &bill, json));
    }
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tillpay-hq: {e}");
            ExitCode::from(1)
        }
    }
}

async fn reconcile(config: &std::path::Path, date: &str, bill: &[String], json: bool) -> ExitCode {
    let fail = |e: String| {
        eprintln!("tillpay-hq reconcile: {e}");
        ExitCode::from(2)
    };
    let Ok(day) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
        return fail(format!("--date {date:?}: give YYYY-MM-DD"));
    };
    let mut files = Vec::new();
    for b in bill {
        match b.split_once('=') {
            Some((ch, f)) if tillpay::gateway::channel(ch).is_some() => {
                files.push((ch.to_string(), PathBuf::from(f)))
            }
            _ => {
                return fail(format!(
                    "--bill {b:?}: give CHANNEL=FILE (wechat, alipay, acquirer)"
                ))
            }
        }
    }
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let pool = match db::pool(&cfg.database_url, 2) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let bills = match tillpay_hq::reconcile::bills(&cfg.channels, date, &files).await {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let report = match tillpay_hq::reconcile::reconcile(&pool, day, &bills).await {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", tillpay_hq::reconcile::table(&report));
    }
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn run(cmd: Command) -> Result<(), String> {
    let load = |p: &PathBuf| Config::load(p).map_err(|e| e.to_string());
    match cmd {
        Command::Reconcile { .. } => Err("reconcile runs on its own".into()),
        Command::Migrate { config } => {
            let cfg = load(&config)?;
            let pool = db::pool(&cfg.database_url, 1).map_err(|e| e.to_string())?;
            let n = db::migrate(&pool).await.map_err(|e| e.to_string())?;
            println!("{n} migration(s) applied");
            Ok(())
        }
        Command::Till {
            command:
                TillCommand::Add {
                    config,
                    store,
                    till,
                    token_file,
                },
        } => {
            let cfg = load(&config)?;
            let pool = db::pool(&cfg.database_url, 1).map_err(|e| e.to_string())?;
            db::migrate(&pool).await.map_err(|e| e.to_string())?;
            // The file first: a till is never left with a token HQ
            // accepts that no one can read.
            let token = tills::new_token().map_err(|e| e.to_string())?;
            write_secret(&token_file, &token)?;
            tills::register(&pool, &store, &till, &token)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "till {till} of store {store}: token written to {} (copy it to the till, mode 0600, as [hq] token_file)",
                token_file.display()
            );
            Ok(())
        }
        Command::Account {
            command: AccountCommand::Set { config, user, role },
        } => {
            let role = tillpay_hq::console::auth::Role::parse(&role)
                .ok_or_else(|| format!("--role {role:?}: viewer, operator or admin"))?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| format!("reading the password from standard input: {e}"))?;
            let password = password.trim_end_matches(['\n', '\r']);
            let cfg = load(&config)?;
            let pool = db::pool(&cfg.database_url, 1).map_err(|e| e.to_string())?;
            db::migrate(&pool).await.map_err(|e| e.to_string())?;
            tillpay_hq::console::auth::set_account(&pool, &user, role, password)
                .await
                .map_err(|e| e.to_string())?;
            tillpay_hq::console::audit::record(
                &pool,
                None,
                "command line",
                "account_set",
                Some(&user),
                serde_json::json!({"role": role.as_str()}),
            )
            .await
            .map_err(|e| e.to_string())?;
            println!("account {user}: {} (sessions ended)", role.as_str());
            Ok(())
        }
        Command::Serve { config } => {
            let cfg = load(&config)?;
            let pool = db::pool(&cfg.database_url, cfg.pool_size).map_err(|e| e.to_string())?;
            let applied = db::migrate(&pool).await.map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .map_err(|e| format!("listen {}: {e}", cfg.listen))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(listen = %bound, migrations_applied = applied, "tillpay-hq serving");
            println!("listening on {bound}");
            let hq = Arc::new(http::Hq {
                pool,
                api_token: cfg.api_token.clone(),
                relay: tillpay_hq::relay::Relay::new(cfg.channels.clone(), cfg.gateway_timeout),
                trust_forwarded_for: cfg.trust_forwarded_for,
                console_origin: cfg.console_origin.clone(),
            });
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| e.to_string())?;
            tokio::select! {
                _ = http::serve(listener, hq) => {}
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            }
            Ok(())
        }
    }
}

/// Writes `text` to `path`, readable by its owner only: a new file (mode
/// 0600 from its creation) renamed over whatever was there, so an older
/// file's wider mode never carries over.
fn write_secret(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    writeln!(f, "{text}").map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
