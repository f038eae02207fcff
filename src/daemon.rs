//! `tillpay run`: open the journal, resume what was in flight, listen for
//! the POS, read the scanner, and stop cleanly on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::engine::Engine;
use crate::gateway::Gateway;
use crate::journal::Journal;
use crate::pos::rpc::Context;
use crate::pos::server::{self, Server};
use crate::systemd;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Bind(#[from] server::BindError),
    #[error("{0}")]
    Other(String),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(cfg: Config, gateways: Vec<Arc<dyn Gateway>>) -> Result<(), DaemonError> {
    // Signals first: a SIGTERM during start-up is a clean stop too.
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| DaemonError::Other(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| DaemonError::Other(e.to_string()))?;
    systemd::notify("STATUS=opening the journal");
    let journal_path = cfg.till.journal_path();
    let j = journal_path.clone();
    let till_id = cfg.till.id.clone();
    let journal = tokio::task::spawn_blocking(move || Journal::open(&j, &till_id))
        .await
        .map_err(|e| DaemonError::Other(e.to_string()))??;
    let engine = Engine::routed(
        Arc::new(journal),
        gateways,
        &cfg.routing(),
        cfg.payment.clone(),
    );

    systemd::notify("STATUS=resuming unfinished payments");
    let resumed = engine
        .recover()
        .await
        .map_err(|e| DaemonError::Other(e.to_string()))?;
    tracing::info!(resumed, journal = %journal_path.display(), "journal open");

    let (listener, owned_path) = listen(&cfg).await?;
    // From the first start with HQ, the journal keeps what HQ lacks (the
    // archive reads this mark).
    if cfg.hq.is_some() && engine.journal().hq_high_water().ok().flatten().is_none() {
        engine
            .journal()
            .set_hq_high_water(0)
            .map_err(|e| DaemonError::Other(e.to_string()))?;
    }
    let hq = cfg.hq.clone().map(|h| {
        let status = Arc::new(std::sync::Mutex::new(crate::sync::SyncStatus::default()));
        tracing::info!(url = %h.url, "syncing the journal to HQ");
        let task = tokio::spawn(crate::sync::run(engine.clone(), h, status.clone()));
        (status, task)
    });
    let ctx = Arc::new(Context {
        hq: hq.as_ref().map(|(s, _)| s.clone()),
        engine: engine.clone(),
        till_id: cfg.till.id.clone(),
        scanner: crate::scanner_link::start(&cfg, &engine),
    });
    let web = match cfg.web.clone() {
        Some(w) => {
            let l = crate::pos::web::bind(&w)
                .await
                .map_err(|e| DaemonError::Other(format!("web.listen {}: {e}", w.listen)))?;
            tracing::info!(listen = %w.listen, origins = ?w.allowed_origins, "browser POS interface (WebSocket /rpc, POST /v1/<method>)");
            let ctx = ctx.clone();
            Some(tokio::spawn(async move {
                crate::pos::web::serve(l, ctx, &w).await
            }))
        }
        None => None,
    };
    let server = Arc::new(Server {
        ctx,
        allowed_uids: cfg.pos.allowed_uids.clone(),
    });
    let serving = tokio::spawn(server.serve(listener));
    let watchdog =
        systemd::watchdog_interval().map(|every| tokio::spawn(watchdog(engine.clone(), every)));

    systemd::notify(&format!(
        "READY=1\nSTATUS=ready: till {} taking payments",
        cfg.till.id
    ));
    tracing::info!(till = %cfg.till.id, "ready");

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    // Attempts in flight stay in the journal; the next start resumes them.
    systemd::notify("STOPPING=1\nSTATUS=stopping");
    serving.abort();
    if let Some(w) = web {
        w.abort();
    }
    if let Some((_, task)) = hq {
        task.abort();
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    if let Some(p) = owned_path {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

async fn listen(cfg: &Config) -> Result<(UnixListener, Option<PathBuf>), DaemonError> {
    if let Some(std_listener) = systemd::listen_fd() {
        std_listener
            .set_nonblocking(true)
            .map_err(|e| DaemonError::Other(format!("socket from systemd: {e}")))?;
        let l = UnixListener::from_std(std_listener)
            .map_err(|e| DaemonError::Other(format!("socket from systemd: {e}")))?;
        tracing::info!("serving the POS on the socket systemd passed");
        return Ok((l, None));
    }
    let l = server::bind(&cfg.pos.socket, cfg.pos.socket_mode).await?;
    tracing::info!(socket = %cfg.pos.socket.display(), "serving the POS");
    Ok((l, Some(cfg.pos.socket.clone())))
}

/// Pings systemd's watchdog only while the engine answers: a journal round
/// trip must complete, so a hung engine stops the pings and systemd
/// restarts the daemon.
async fn watchdog(engine: Arc<Engine>, every: std::time::Duration) {
    loop {
        let j = engine.journal().clone();
        let alive = tokio::time::timeout(
            every,
            tokio::task::spawn_blocking(move || j.pragma("user_version")),
        )
        .await
        .is_ok_and(|r| r.is_ok_and(|v| v.is_ok()))
            // After a journal write failed, stop the pings: systemd restarts
            // the daemon, and recovery settles what was in flight.
            && engine.journal_ok();
        if alive {
            systemd::notify("WATCHDOG=1");
        } else {
            tracing::error!("engine did not answer the watchdog check");
        }
        tokio::time::sleep(every).await;
    }
}
