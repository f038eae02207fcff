//! `tillpay doctor`: checks what a till needs, one line each, OK / WARN /
//! FAIL with the fix in plain words. Exit 0 only if nothing FAILed.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::gateway::channel::Health;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Default)]
struct Checks {
    lines: Vec<(Level, String, String)>,
}

impl Checks {
    fn add(&mut self, level: Level, what: impl Into<String>, detail: impl Into<String>) {
        let (what, detail) = (what.into(), detail.into());
        let tag = match level {
            Level::Ok => "OK  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("{tag} {what}: {detail}");
        self.lines.push((level, what, detail));
    }
    fn worst(&self) -> Level {
        self.lines.iter().map(|l| l.0).max().unwrap_or(Level::Ok)
    }
}

pub async fn main(path: &Path) -> ExitCode {
    let mut c = Checks::default();
    let cfg = match Config::load(path) {
        Ok(cfg) => {
            c.add(
                Level::Ok,
                "config",
                format!(
                    "{} is valid; key files readable only by their owner",
                    path.display()
                ),
            );
            cfg
        }
        Err(e) => {
            c.add(
                Level::Fail,
                "config",
                format!("{e} — fix the key named, then run doctor again"),
            );
            return ExitCode::from(1);
        }
    };
    keys(&mut c, &cfg);
    routing(&mut c, &cfg);
    scanner(&mut c, &cfg);
    socket(&mut c, &cfg).await;
    if let Some(w) = &cfg.web {
        web(&mut c, w).await;
    }
    if let Some(h) = &cfg.hq {
        hq(&mut c, h, &cfg.till.id).await;
    }
    journal(&mut c, &cfg);
    gateways(&mut c, &cfg).await;
    if c.worst() == Level::Fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn keys(c: &mut Checks, cfg: &Config) {
    match cfg.gateways() {
        Ok(g) => c.add(
            Level::Ok,
            "keys",
            format!(
                "{} gateway client(s) built: keys parse, sign and verify",
                g.len()
            ),
        ),
        Err(e) => c.add(Level::Fail, "keys", format!("{e}")),
    }
    for finding in cfg.channels.iter().flat_map(|ch| ch.doctor()) {
        let level = match finding.health {
            Health::Ok => Level::Ok,
            Health::Warn => Level::Warn,
            Health::Fail => Level::Fail,
        };
        c.add(level, finding.what, finding.detail);
    }
}

/// Which channel carries each provider's codes, and which codes the till
/// will refuse for want of one.
fn routing(c: &mut Checks, cfg: &Config) {
    let routes = cfg.routing();
    let shown: Vec<String> = routes
        .iter()
        .map(|(p, ch)| format!("{p} by {ch}"))
        .collect();
    let refused: Vec<&str> = crate::domain::Provider::ALL
        .iter()
        .filter(|p| !routes.iter().any(|(q, _)| q == *p))
        .map(|p| p.as_str())
        .collect();
    let mut detail = shown.join(", ");
    if !refused.is_empty() {
        detail.push_str(&format!(
            "; {} codes are refused (no channel carries them)",
            refused.join(", ")
        ));
    }
    c.add(Level::Ok, "routing", detail);
}

/// Where udev lists keyboard-mode devices by their vendor and model.
const INPUT_BY_ID: &str = "/dev/input/by-id";

/// The keyboards a gun in keyboard mode could be, for the configuring.
fn hid_candidates(c: &mut Checks) {
    let found = crate::scanner::hid::device::candidates(std::path::Path::new(INPUT_BY_ID));
    if found.is_empty() {
        c.add(
            Level::Ok,
            "scanner candidates",
            format!("no keyboard-mode devices under {INPUT_BY_ID}"),
        );
    } else {
        c.add(
            Level::Ok,
            "scanner candidates",
            format!(
                "keyboard-mode devices: {}; a gun in keyboard mode is one of these: set [scanner] kind = \"hid\" and device = its path",
                found.join(", ")
            ),
        );
    }
}

fn scanner(c: &mut Checks, cfg: &Config) {
    let Some(s) = &cfg.scanner else {
        c.add(
            Level::Ok,
            "scanner",
            "none configured ([scanner] absent): codes typed at the POS only",
        );
        hid_candidates(c);
        return;
    };
    let dev = s.device.display().to_string();
    let hid = matches!(s.kind, crate::config::ScannerKind::Hid { .. });
    let real = match std::fs::canonicalize(&s.device) {
        Ok(r) => r,
        Err(_) => {
            let how = if hid {
                "plug the scanner in (keyboard mode) and check its path under /dev/input/by-id"
            } else {
                "plug the scanner in (serial/COM mode) and check the udev rules (docs/operations.md)"
            };
            c.add(
                Level::Fail,
                "scanner",
                format!("{dev} is not present: {how}"),
            );
            if hid {
                hid_candidates(c);
            }
            return;
        }
    };
    let holders = holders_of(&real);
    if hid {
        return hid_scanner(c, &dev, &real, &holders);
    }
    match serialport::new(real.to_string_lossy(), s.baud).timeout(Duration::from_millis(100)).open() {
        Ok(_) => c.add(Level::Ok, "scanner", format!("{dev} → {} opens at {} baud", real.display(), s.baud)),
        Err(e) if !holders.is_empty() => c.add(
            Level::Warn,
            "scanner",
            format!("{dev} is held by {} ({e}); fine if that is the running tillpay", holders.join(", ")),
        ),
        Err(e) => c.add(
            Level::Fail,
            "scanner",
            format!("{dev} cannot be opened: {e}: the service user must be in group dialout (adduser tillpay dialout)"),
        ),
    }
}

/// A keyboard-mode gun: it opens, and tillpay can take it (or the running
/// tillpay holds it).
fn hid_scanner(c: &mut Checks, dev: &str, real: &std::path::Path, holders: &[String]) {
    use crate::scanner::hid::device::{self, GrabError};
    let file = match device::open(real) {
        Ok(f) => f,
        Err(e) => {
            return c.add(
                Level::Fail,
                "scanner",
                format!(
                    "{dev} {e}: the service user must be in group input (adduser tillpay input)"
                ),
            )
        }
    };
    match device::grab(&file) {
        Ok(()) => c.add(Level::Ok, "scanner", format!("{dev} → {} opens and can be taken (EVIOCGRAB)", real.display())),
        Err(GrabError::Refused(why)) if !holders.is_empty() => c.add(
            Level::Warn,
            "scanner",
            format!("{dev}: {why}; held by {}: fine if that is the running tillpay", holders.join(", ")),
        ),
        Err(GrabError::Refused(why)) => c.add(Level::Fail, "scanner", format!("{dev}: grab refused: {why}")),
        Err(GrabError::NotInput) => c.add(
            Level::Fail,
            "scanner",
            format!("{dev} is not an input device: kind = \"hid\" wants an evdev node (/dev/input/by-id/…-event-kbd)"),
        ),
        Err(GrabError::Other(why)) => c.add(Level::Fail, "scanner", format!("{dev}: {why}")),
    }
}

/// Processes that have `dev` open, as `name[pid]`.
fn holders_of(dev: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == dev))
        {
            let name = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            out.push(format!("{}[{pid}]", name.trim()));
        }
    }
    out
}

/// The browser interface: answering with this till's token, or free to be
/// bound; and whether any browser page may use it.
async fn web(c: &mut Checks, w: &crate::config::WebConfig) {
    let pages = if w.allowed_origins.is_empty() {
        "no browser page may connect (web.allowed_origins is empty; clients without an Origin may)"
            .to_string()
    } else {
        format!("pages of {} may connect", w.allowed_origins.join(", "))
    };
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()
        .map(|client| {
            client
                .post(format!("http://{}/v1/status", w.listen))
                .bearer_auth(&w.token)
                .send()
        });
    let answer = match probe {
        Some(p) => p.await,
        None => {
            return c.add(
                Level::Warn,
                "web",
                "cannot build an HTTP client to probe it".to_string(),
            )
        }
    };
    match answer {
        Ok(r) if r.status().is_success() => c.add(
            Level::Ok,
            "web",
            format!("ws://{0}/rpc and http://{0}/v1/ answer with this till's token; {pages}", w.listen),
        ),
        Ok(r) => c.add(
            Level::Fail,
            "web",
            format!(
                "{} answers HTTP {} to this till's token: another program on that port, or a tillpay with another web.token_file",
                w.listen,
                r.status().as_u16()
            ),
        ),
        Err(_) => match std::net::TcpListener::bind(w.listen) {
            Ok(_) => c.add(
                Level::Ok,
                "web",
                format!("{} is free: tillpay listens there when it runs; {pages}", w.listen),
            ),
            Err(e) => c.add(
                Level::Fail,
                "web",
                format!("web.listen {}: {e}", w.listen),
            ),
        },
    }
}

/// HQ: reachable, and knowing this till's token as this till. An HQ that
/// cannot be reached is a warning: sales go on and the sync catches up.
async fn hq(c: &mut Checks, h: &crate::config::HqConfig, till_id: &str) {
    let answer = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => {
            client
                .get(format!("{}{}", h.url, crate::sync::wire::SYNC_PATH))
                .bearer_auth(&h.token)
                .send()
                .await
        }
        Err(_) => {
            return c.add(
                Level::Warn,
                "hq",
                "cannot build an HTTP client to probe it".to_string(),
            )
        }
    };
    let r = match answer {
        Ok(r) => r,
        Err(e) => {
            return c.add(
                Level::Warn,
                "hq",
                format!(
                    "{} cannot be reached ({e}): sales go on, the journal syncs once it can",
                    h.url
                ),
            )
        }
    };
    let status = r.status().as_u16();
    let body: serde_json::Value = r
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    match (status, body["till_id"].as_str()) {
        (200, Some(id)) if id == till_id => c.add(
            Level::Ok,
            "hq",
            format!(
                "{} knows this till as {id} of store {}; it has its events up to {}",
                h.url,
                body["store_id"].as_str().unwrap_or("?"),
                body["high_water"]
            ),
        ),
        (200, Some(id)) => c.add(
            Level::Fail,
            "hq",
            format!(
                "{} knows hq.token_file's token as till {id}, not {till_id}: copy this till's own token",
                h.url
            ),
        ),
        (401, _) => c.add(
            Level::Fail,
            "hq",
            format!(
                "{} does not know hq.token_file's token: register the till (tillpay-hq till add) and copy its token",
                h.url
            ),
        ),
        _ => c.add(
            Level::Fail,
            "hq",
            format!("{} answers HTTP {status}: is it tillpay-hq?", h.url),
        ),
    }
}

async fn socket(c: &mut Checks, cfg: &Config) {
    let path = &cfg.pos.socket;
    if path.exists() {
        match crate::pos::client::Client::connect(path).await {
            Ok(mut client) => {
                let status = tokio::time::timeout(
                    Duration::from_secs(3),
                    client.call("status", serde_json::json!({}), |_| {}),
                )
                .await;
                match status {
                    Ok(Ok(s)) if s["journal_ok"] == false => c.add(
                        Level::Fail,
                        "socket",
                        format!(
                            "tillpay {} is running but stopped charging: its journal failed ({}); \
                             fix the cause (see the journal check), then restart tillpay: \
                             sales in flight resume",
                            s["version"].as_str().unwrap_or("?"),
                            s["journal_error"].as_str().unwrap_or("no reason given")
                        ),
                    ),
                    Ok(Ok(s)) => c.add(
                        Level::Ok,
                        "socket",
                        format!(
                            "{} answers: tillpay {} is running",
                            path.display(),
                            s["version"].as_str().unwrap_or("?")
                        ),
                    ),
                    _ => c.add(
                        Level::Warn,
                        "socket",
                        format!("{} accepts but does not answer status", path.display()),
                    ),
                }
            }
            Err(_) => c.add(
                Level::Warn,
                "socket",
                format!(
                    "{} is a stale file (no daemon): it is replaced on start",
                    path.display()
                ),
            ),
        }
        return;
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    if dir.is_dir() {
        c.add(
            Level::Ok,
            "socket",
            format!(
                "{} will be created by the daemon (or systemd's tillpay.socket)",
                path.display()
            ),
        );
    } else {
        c.add(
            Level::Warn,
            "socket",
            format!(
                "{} does not exist yet: systemd's RuntimeDirectory=tillpay creates it",
                dir.display()
            ),
        );
    }
}

/// Below this, the journal may not be able to take the next sale.
const SPACE_FAIL: u64 = 1 << 20;
/// Below this, warn before it comes to that.
const SPACE_WARN: u64 = 64 << 20;

/// Bytes that may still be written on the file system holding `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs(2) reads the NUL-terminated path and fills `st`;
    // both pointers are valid for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so `st` is filled.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

fn space(c: &mut Checks, cfg: &Config) {
    let dir = &cfg.till.state_dir;
    let Ok(free) = free_bytes(dir) else {
        return;
    };
    let mib = free >> 20;
    let (level, what) = if free < SPACE_FAIL {
        (
            Level::Fail,
            "the journal cannot grow, and tillpay stops charging when it cannot write; \
             free space there, then restart tillpay",
        )
    } else if free < SPACE_WARN {
        (Level::Warn, "low: free space there before it runs out")
    } else {
        (Level::Ok, "free")
    };
    c.add(
        level,
        "disk",
        format!(
            "{} MiB on the file system of {}: {what}",
            mib,
            dir.display()
        ),
    );
}

fn journal(c: &mut Checks, cfg: &Config) {
    space(c, cfg);
    let path = cfg.till.journal_path();
    if !path.exists() {
        let dir = &cfg.till.state_dir;
        let level = if dir.is_dir() { Level::Ok } else { Level::Warn };
        c.add(
            level,
            "journal",
            format!(
                "{} not created yet (first start creates it in {})",
                path.display(),
                dir.display()
            ),
        );
        return;
    }
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = match rusqlite::Connection::open_with_flags(&path, flags) {
        Ok(c) => c,
        Err(e) => return c.add(Level::Fail, "journal", format!("{}: {e}", path.display())),
    };
    let integrity: Result<String, _> = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0));
    match integrity {
        Ok(v) if v == "ok" => {}
        Ok(v) => {
            return c.add(
                Level::Fail,
                "journal",
                format!(
                    "{} is damaged: {v}; stop tillpay and restore it from a backup",
                    path.display()
                ),
            )
        }
        Err(e) => {
            return c.add(
                Level::Fail,
                "journal",
                format!("{} is not a journal: {e}", path.display()),
            )
        }
    }
    let stuck: Result<i64, _> = conn.query_row(
        "SELECT COUNT(*) FROM attempts WHERE phase IN ('submitting', 'paying', 'revoking', 'needs_attention') AND phase = 'needs_attention'",
        [],
        |r| r.get(0),
    );
    match stuck {
        Ok(0) => c.add(
            Level::Ok,
            "journal",
            format!(
                "{} passes the integrity check; nothing needs attention",
                path.display()
            ),
        ),
        Ok(n) => c.add(
            Level::Warn,
            "journal",
            format!("{n} attempt(s) need an operator: tillpay journal attention"),
        ),
        Err(e) => c.add(Level::Fail, "journal", format!("{}: {e}", path.display())),
    }
}

async fn gateways(c: &mut Checks, cfg: &Config) {
    let urls: Vec<(String, String)> = cfg
        .channels
        .iter()
        .map(|ch| (ch.name().to_string(), ch.endpoint().to_string()))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build();
    let Ok(client) = client else {
        return c.add(Level::Fail, "gateways", "no HTTP client could be built");
    };
    let mut clock_checked = false;
    for (name, url) in urls {
        match client.head(&url).send().await {
            Ok(resp) => {
                c.add(
                    Level::Ok,
                    format!("{name} gateway"),
                    format!("{url} reachable (HTTP {})", resp.status().as_u16()),
                );
                if clock_checked {
                    continue;
                }
                let date = resp
                    .headers()
                    .get("date")
                    .and_then(|d| d.to_str().ok())
                    .map(str::to_string);
                if let Some(remote) =
                    date.and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
                {
                    clock_checked = true;
                    let skew = (chrono::Utc::now() - remote.with_timezone(&chrono::Utc))
                        .num_seconds()
                        .abs();
                    let detail = format!("{skew} s from {name}'s clock");
                    match skew {
                        0..=30 => c.add(Level::Ok, "clock", detail),
                        31..=300 => c.add(Level::Warn, "clock", format!("{detail}: enable NTP (timedatectl set-ntp true)")),
                        _ => c.add(Level::Fail, "clock", format!("{detail}: gateways reject requests from a wrong clock; enable NTP (timedatectl set-ntp true)")),
                    }
                }
            }
            Err(e) => c.add(
                Level::Fail,
                format!("{name} gateway"),
                format!(
                    "{url} not reachable: {e}; check the network, DNS and any proxy or firewall"
                ),
            ),
        }
    }
    if !clock_checked {
        let year = chrono::Utc::now().format("%Y").to_string();
        c.add(
            Level::Warn,
            "clock",
            format!("no gateway told the time; the local year is {year}"),
        );
    }
}
