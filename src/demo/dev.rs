//! `tillpay dev`: a till to develop a POS against. The simulator (both
//! gateways, on loopback) and a virtual scan gun run in this process; the
//! daemon is the real `tillpay run`, a child started with a config written
//! in the development directory, in the same keys a real till uses, so it
//! can be copied to production. The journal stays in that directory across
//! runs. Commands on standard input scan a code, restart the daemon (or
//! kill it as a power cut would) and quit.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::domain::Provider;
use crate::pos::client::Client;
use crate::sim::behaviour::Behaviour;
use crate::sim::pty::Pty;
use crate::sim::{Simulator, WechatApi};

#[derive(clap::Args)]
pub struct Args {
    /// The development directory: config, keys, journal, log.
    #[arg(long, default_value = "tillpay-dev")]
    dir: PathBuf,
    /// The POS socket (default: DIR/pos.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The demo's short timings (revoke after 6 s unpaid, one simulated
    /// second = 0.5 s) instead of production's.
    #[arg(long)]
    fast: bool,
    /// The WeChat Pay API the till speaks to the simulator.
    #[arg(long, value_enum, default_value_t = WechatApi::V2)]
    wechat_api: WechatApi,
    /// Also serve the browser interface (WebSocket /rpc, POST /v1/…) on
    /// this loopback address, e.g. 127.0.0.1:8765; its token is DIR/web-token.
    #[arg(long)]
    web: Option<std::net::SocketAddr>,
    /// An Origin the browser interface lets in (repeat for more), e.g. the
    /// address the example web POS is served from.
    #[arg(long = "web-origin")]
    web_origins: Vec<String>,
}

/// The `[web]` table, with a token made once and kept in the directory.
fn web_table(dir: &Path, args: &Args) -> Result<String, String> {
    let Some(listen) = args.web else {
        return Ok(String::new());
    };
    let token_file = dir.join("web-token");
    if !token_file.exists() {
        let mut raw = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| "no randomness for the web token".to_string())?;
        use base64::Engine as _;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        std::fs::write(&token_file, format!("{token}\n"))
            .map_err(|e| format!("{}: {e}", token_file.display()))?;
    }
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", token_file.display()))?;
    let origins: Vec<String> = args.web_origins.iter().map(|o| format!("{o:?}")).collect();
    Ok(format!(
        "[web]\nlisten = \"{listen}\"\ntoken_file = {token:?}\nallowed_origins = [{origins}]\n\n",
        token = token_file.display().to_string(),
        origins = origins.join(", "),
    ))
}

/// What `tillpay dev` runs: the simulator, the virtual scanner, the daemon.
struct Dev {
    sim: Simulator,
    scanner: Pty,
    config: PathBuf,
    log: PathBuf,
    socket: PathBuf,
    daemon: Option<Child>,
}

/// The `[payment]` table: production's defaults, or the demo's timings.
fn payment_table(fast: bool) -> &'static str {
    if fast {
        "[payment]\npoll_interval_ms = 1000\npay_timeout_ms = 6000\nrevoke_interval_ms = 500\n\
         revoke_max_attempts = 3\nhttp_timeout_ms = 3000\nscan_timeout_ms = 120000\n"
    } else {
        "[payment]\n# production's defaults: poll every 5 s, revoke after 30 s unpaid\n"
    }
}

fn setup(args: &Args, sim: &Simulator, scanner: &Pty) -> Result<(PathBuf, PathBuf), String> {
    let dir = &args.dir;
    let state = dir.join("state");
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let socket = args.socket.clone().unwrap_or_else(|| dir.join("pos.sock"));
    // The daemon opens the scanner by a stable name, as udev makes it.
    let link = dir.join("scanner");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&scanner.path, &link).map_err(|e| format!("scanner link: {e}"))?;
    let min_reverse_ms = if args.fast { 3000 } else { 15000 };
    let tables = sim
        .write_config_tables(&dir, min_reverse_ms, args.wechat_api)
        .map_err(|e| format!("key files: {e}"))?;
    let text = format!(
        "# Written by `tillpay dev` at each start: the simulator's address and keys\n\
         # change; the rest is a real till's config.\n\
         [till]\nid = \"DEV1\"\nstate_dir = {state:?}\n\n\
         [pos]\nsocket = {socket:?}\nsocket_mode = \"0600\"\n\n\
         [scanner]\ndevice = {link:?}\nframe_gap_ms = 50\n\n{web}{payment}\n{tables}",
        state = dir.join("state").display().to_string(),
        socket = socket.display().to_string(),
        link = link.display().to_string(),
        payment = payment_table(args.fast),
        web = web_table(&dir, args)?,
    );
    let config = dir.join("tillpay.toml");
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", config.display()))?;
    Ok((config, socket))
}

impl Dev {
    /// Starts `tillpay run` and waits until it answers on its socket.
    async fn start_daemon(&mut self) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| format!("tillpay's own path: {e}"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let child = Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("tillpay run: {e}"))?;
        self.daemon = Some(child);
        for _ in 0..200 {
            if Client::connect(&self.socket).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "the daemon did not answer on {}; see {}",
            self.socket.display(),
            self.log.display()
        ))
    }

    /// Stops the daemon: SIGTERM as systemd does, or SIGKILL as a power cut.
    fn stop_daemon(&mut self, hard: bool) {
        let Some(mut child) = self.daemon.take() else {
            return;
        };
        if hard {
            let _ = child.kill();
        } else if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on our own child's pid, which has not been
            // waited for yet, so it cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = child.wait();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.stop_daemon(false);
    }
}

/// Ready-made payment codes, one per simulator behaviour and gateway.
fn print_codes(serial: u64) {
    println!("ready-made payment codes (single use, as real ones; change the last digits for a fresh one):");
    for provider in [Provider::Wechat, Provider::Alipay] {
        for (i, b) in Behaviour::ALL.iter().enumerate() {
            let code = b.code(provider, serial + i as u64);
            println!("  {:<7} {code}  {}", provider.as_str(), b.describe());
        }
    }
    println!(
        "any other valid code pays at once (WeChat: 18 digits 10-15…, Alipay: 16-24 digits 25-30…)"
    );
}

fn print_help() {
    println!("commands: scan CODE | restart | crash | codes | quit   (docs/pos-protocol.md, \"A till to develop against\")");
}

pub async fn main(args: Args) -> ExitCode {
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tillpay dev: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let unit = if args.fast { 500 } else { 1000 };
    let sim = Simulator::start(Duration::from_millis(unit))
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let scanner = Pty::open().map_err(|e| format!("virtual scanner: {e}"))?;
    let (config, socket) = setup(&args, &sim, &scanner)?;
    let dir = config.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut dev = Dev {
        sim,
        scanner,
        log: dir.join("tillpay.log"),
        config,
        socket,
        daemon: None,
    };
    dev.start_daemon().await?;
    println!(
        "tillpay dev — the real daemon against the simulator; no scanner, no merchant account"
    );
    println!("socket:  {}", dev.socket.display());
    println!("config:  {}", dev.config.display());
    println!("journal: {}", dir.join("state/journal.sqlite").display());
    println!("log:     {}", dev.log.display());
    println!(
        "timings: {}",
        if args.fast {
            "fast (revoke after 6 s unpaid; 1 simulated second = 0.5 s)"
        } else {
            "production (poll every 5 s, revoke after 30 s unpaid)"
        }
    );
    println!(
        "gateways: simulated WeChat Pay and Alipay at http://{}",
        dev.sim.addr
    );
    if let Some(web) = args.web {
        println!(
            "web:     ws://{web}/rpc and http://{web}/v1/<method>, token in {}",
            dir.join("web-token").display()
        );
    }
    print_codes(1);
    print_help();
    commands(&mut dev).await;
    dev.stop_daemon(false);
    println!("stopped; the journal stays in {}", dir.display());
    Ok(())
}

/// Reads commands until `quit` or a signal. Standard input that ends (a
/// script, `< /dev/null`) leaves the till running until SIGTERM or SIGINT.
async fn commands(dev: &mut Dev) {
    let (tx, mut lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let (Ok(mut term), Ok(mut int)) = (
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
    ) else {
        return;
    };
    let mut serial = 100;
    // At the end of input only the signals remain to be waited for: the
    // input branch is switched off, not left pending inside the select.
    let mut input_open = true;
    loop {
        let line = tokio::select! {
            line = lines.recv(), if input_open => match line {
                Some(l) => l,
                None => {
                    input_open = false;
                    continue;
                }
            },
            _ = term.recv() => return,
            _ = int.recv() => return,
        };
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (None, _) => {}
            (Some("scan"), Some(code)) => match dev.scanner.scan(code) {
                // Never the code itself: it is a payment code.
                Ok(()) => println!("scanned {}", crate::domain::mask_code(code)),
                Err(e) => println!("virtual scanner: {e}"),
            },
            (Some(cmd @ ("restart" | "crash")), _) => {
                dev.stop_daemon(cmd == "crash");
                match dev.start_daemon().await {
                    Ok(()) if cmd == "crash" => {
                        println!(
                            "daemon killed (kill -9) and started again: sales in flight resume"
                        )
                    }
                    Ok(()) => println!("daemon restarted: sales in flight resume"),
                    Err(e) => println!("{e}"),
                }
            }
            (Some("codes"), _) => {
                serial += 100;
                print_codes(serial);
            }
            (Some("quit" | "exit"), _) => return,
            _ => print_help(),
        }
    }
}
