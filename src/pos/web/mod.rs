//! The browser POS interface: the JSON-RPC methods and notifications over
//! a WebSocket at `/rpc`, and each method as `POST /v1/<method>` for POSes
//! without WebSockets. Loopback only unless configured, and every request
//! passes the guard (Host, Origin, token) before anything else is read.

mod guard;
mod http;
mod ws;

pub use guard::{Guard, Refusal, BEARER_PROTOCOL};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ORIGIN, VARY};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::rpc::Context;
use super::server::MAX_CLIENTS;
use crate::config::WebConfig;

type Answer = Response<Full<Bytes>>;

/// Binds the configured address (port 0: any free one, for tests).
pub async fn bind(cfg: &WebConfig) -> std::io::Result<TcpListener> {
    TcpListener::bind(cfg.listen).await
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, cfg: &WebConfig) {
    let bound = listener.local_addr().unwrap_or(cfg.listen);
    let guard = Arc::new(Guard::new(cfg, bound));
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    // A WebSocket outlives its HTTP connection's slot (the upgrade hands
    // it over): sessions have slots of their own.
    let sessions = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "web: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (ctx, guard, sessions) = (ctx.clone(), guard.clone(), sessions.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let (ctx, guard, sessions) = (ctx.clone(), guard.clone(), sessions.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(route(req, &ctx, &guard, &sessions).await)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let _ = conn.await;
            drop(permit);
        });
    }
}

fn header(req: &Request<Incoming>, name: impl hyper::header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A plain answer: `body` as JSON.
pub(super) fn json_answer(status: u16, body: &serde_json::Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn refused(why: Refusal) -> Answer {
    json_answer(
        why.status,
        &serde_json::json!({"code": -32000, "message": why.message}),
    )
}

/// The guard, then the endpoint. Refusals are logged without the token.
async fn route(
    req: Request<Incoming>,
    ctx: &Arc<Context>,
    guard: &Guard,
    sessions: &Arc<Semaphore>,
) -> Answer {
    if let Err(why) = guard.host(header(&req, hyper::header::HOST)) {
        tracing::warn!(host = ?header(&req, hyper::header::HOST), "web: refused a request for another Host");
        return refused(why);
    }
    let origin = match guard.origin(header(&req, ORIGIN)) {
        Ok(o) => o.map(str::to_string),
        Err(why) => {
            tracing::warn!(origin = ?header(&req, ORIGIN), "web: refused a page of another origin");
            return refused(why);
        }
    };
    let path = req.uri().path().to_string();
    // A preflight carries no token: the browser asks whether it may send one.
    let mut answer = if req.method() == Method::OPTIONS && path.starts_with("/v1/") {
        http::preflight()
    } else {
        match guard.token(
            header(&req, hyper::header::AUTHORIZATION),
            header(&req, hyper::header::SEC_WEBSOCKET_PROTOCOL),
        ) {
            Err(why) => {
                tracing::warn!(%path, "web: refused a request without the till's token");
                refused(why)
            }
            Ok(protocol) => match (req.method(), path.as_str()) {
                (&Method::GET, "/rpc") => match sessions.clone().try_acquire_owned() {
                    Ok(slot) => ws::upgrade(req, ctx.clone(), protocol, slot),
                    Err(_) => json_answer(
                        503,
                        &serde_json::json!({"code": -32000, "message": "too many clients"}),
                    ),
                },
                (&Method::POST, p) if p.starts_with("/v1/") => http::call(req, ctx).await,
                _ => json_answer(
                    404,
                    &serde_json::json!({"code": -32601, "message": "no such endpoint: WebSocket GET /rpc, or POST /v1/<method>"}),
                ),
            },
        }
    };
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let h = answer.headers_mut();
        h.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(VARY, HeaderValue::from_static("Origin"));
    }
    answer
}
