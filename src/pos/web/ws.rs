//! The WebSocket at `/rpc`: one JSON-RPC message per text frame, the same
//! session as a Unix socket line (answers, every notification, the same
//! limits).

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{json_answer, Answer};
use crate::pos::rpc::{self, Context};
use crate::pos::server::MAX_LINE;
use crate::pos::session::Session;

/// RFC 6455 §1.3: the key the client sent, with this GUID, through SHA-1.
fn accept_key(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Answers the opening handshake and runs the session once the
/// connection is upgraded.
pub(super) fn upgrade(
    mut req: Request<Incoming>,
    ctx: Arc<Context>,
    protocol: Option<String>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Answer {
    let h = req.headers();
    let has = |name, want: &str| {
        h.get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(want)))
    };
    let key = h
        .get(hyper::header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (true, true, true, Some(key)) = (
        has(UPGRADE, "websocket"),
        has(CONNECTION, "upgrade"),
        has(hyper::header::SEC_WEBSOCKET_VERSION, "13"),
        key,
    ) else {
        return json_answer(
            400,
            &serde_json::json!({"code": rpc::INVALID_REQUEST, "message": "/rpc takes a WebSocket (version 13)"}),
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_LINE))
                    .max_frame_size(Some(MAX_LINE));
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                run(ws, ctx).await;
                drop(slot);
            }
            Err(e) => tracing::debug!(error = %e, "web: the WebSocket upgrade failed"),
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept_key(&key)) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        h.insert(SEC_WEBSOCKET_PROTOCOL, p);
    }
    r
}

async fn run<S>(ws: WebSocketStream<S>, ctx: Arc<Context>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (session, mut rx) = Session::open(ctx);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if sink.send(Message::text(msg.to_string())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = session.dropped.notified() => {
                writer.abort();
                return;
            }
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                if !session.take(t.as_bytes()).await {
                    break;
                }
            }
            Some(Ok(Message::Binary(_))) => {
                session
                    .say(rpc::error(
                        None,
                        rpc::INVALID_REQUEST,
                        "send JSON-RPC as text frames",
                    ))
                    .await;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {} // ping/pong: answered by the protocol layer
            Some(Err(e)) => {
                // Too long, or broken framing: say so if it can still be heard.
                session
                    .say(rpc::error(
                        None,
                        rpc::INVALID_REQUEST,
                        format!("websocket: {e}"),
                    ))
                    .await;
                break;
            }
        }
    }
    drop(session);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(
            super::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
