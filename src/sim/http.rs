//! A small HTTP/1.1 server on loopback for the simulator's dialects. Each
//! dialect answers a [`SimRequest`] with a [`SimResponse`]; `Hangup` closes
//! the connection without an answer (the "answer lost" behaviour).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Requests bigger than this are refused: a simulator must not be an easy
/// memory sink either.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct SimRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl SimRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub enum SimResponse {
    Reply {
        status: u16,
        content_type: String,
        body: Vec<u8>,
        /// Extra headers (WeChat v3's signature headers).
        headers: Vec<(String, String)>,
    },
    /// Drop the connection without answering.
    Hangup,
    /// Answer `then`, but only `after` this long (a slow gateway).
    Late {
        after: std::time::Duration,
        then: Box<SimResponse>,
    },
}

/// The page a proxy (nginx) in front of a gateway serves for HTTP 502.
pub fn bad_gateway_page() -> SimResponse {
    SimResponse::Reply {
        status: 502,
        content_type: "text/html".to_string(),
        body: b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n".to_vec(),
        headers: Vec::new(),
    }
}

impl SimResponse {
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        SimResponse::Reply {
            status: 200,
            content_type: content_type.to_string(),
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Self {
        SimResponse::Reply {
            status,
            content_type: "text/plain; charset=utf-8".to_string(),
            body: body.into(),
            headers: Vec::new(),
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One dialect of the simulator (or a router over several).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: SimRequest) -> BoxFuture<'_, SimResponse>;
}

#[derive(Debug)]
struct Hangup;
impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated lost answer")
    }
}
impl std::error::Error for Hangup {}

/// Serves `handler` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, handler: Arc<dyn Handler>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let handler = handler.clone();
                async move { answer(handler, req).await }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    handler: Arc<dyn Handler>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Hangup> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(413, "text/plain", b"request too large".to_vec())),
    };
    let sim_req = SimRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body,
    };
    let mut resp = handler.handle(sim_req).await;
    loop {
        match resp {
            SimResponse::Reply {
                status,
                content_type,
                body,
                headers,
            } => {
                let mut resp = reply(status, &content_type, body);
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (
                        hyper::header::HeaderName::from_bytes(k.as_bytes()),
                        hyper::header::HeaderValue::from_str(&v),
                    ) {
                        resp.headers_mut().insert(k, v);
                    }
                }
                return Ok(resp);
            }
            SimResponse::Hangup => return Err(Hangup),
            SimResponse::Late { after, then } => {
                tokio::time::sleep(after).await;
                resp = *then;
            }
        }
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
