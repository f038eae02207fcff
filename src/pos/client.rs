//! A small client of the POS socket, used by the `tillpay` client commands
//! (and a model for POS developers: one request line, then lines until the
//! answer with the same id; notifications may come in between).

use std::path::Path;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach tillpay at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("connection to tillpay lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("tillpay sent something that is not JSON-RPC: {0}")]
    Protocol(String),
    #[error("{message} (error {code})")]
    Rpc { code: i64, message: String },
}

pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
}

impl Client {
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let (r, w) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(r),
            writer: w,
            next_id: 1,
        })
    }

    /// Sends one request and waits for its answer; every notification
    /// that arrives meanwhile goes to `on_notice`.
    pub async fn call(
        &mut self,
        method: &str,
        params: Value,
        mut on_notice: impl FnMut(&Value),
    ) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await?;
        loop {
            let mut buf = String::new();
            if self.reader.read_line(&mut buf).await? == 0 {
                return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let msg: Value =
                serde_json::from_str(&buf).map_err(|e| ClientError::Protocol(e.to_string()))?;
            if msg.get("method").is_some() {
                on_notice(&msg);
                continue;
            }
            if msg.get("id") != Some(&json!(id)) {
                if let Some(err) = msg.get("error") {
                    return Err(rpc_error(err));
                }
                continue;
            }
            if let Some(err) = msg.get("error") {
                return Err(rpc_error(err));
            }
            return msg.get("result").cloned().ok_or_else(|| {
                ClientError::Protocol("an answer with neither result nor error".into())
            });
        }
    }
}

fn rpc_error(err: &Value) -> ClientError {
    ClientError::Rpc {
        code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_string(),
    }
}
