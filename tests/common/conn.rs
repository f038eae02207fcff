//! One connection to the POS socket, as a test client: send a line, read
//! lines, wait for the answer with an id.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

pub struct Conn {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

impl Conn {
    pub async fn open(path: &std::path::Path) -> Conn {
        let s = UnixStream::connect(path).await.expect("connect");
        let (r, w) = s.into_split();
        Conn {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    pub async fn send_raw(&mut self, line: &[u8]) {
        self.writer.write_all(line).await.expect("write");
    }

    pub async fn send(&mut self, v: Value) {
        let mut line = v.to_string();
        line.push('\n');
        self.send_raw(line.as_bytes()).await;
    }

    /// The next message, or None at EOF; panics after 10 s.
    pub async fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
            .await
            .expect("an answer within 10 s")
            .ok()?;
        if n == 0 {
            return None;
        }
        Some(serde_json::from_str(&line).expect("a JSON line"))
    }

    /// Reads until the answer with `id`, collecting notifications.
    pub async fn answer(&mut self, id: i64) -> (Value, Vec<Value>) {
        let mut notes = Vec::new();
        loop {
            let msg = self.next().await.expect("connection open");
            if msg.get("method").is_some() {
                notes.push(msg);
            } else if msg["id"] == id {
                return (msg, notes);
            }
        }
    }

    pub async fn call(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .await;
        self.answer(id).await.0
    }
}
