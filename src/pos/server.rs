//! The POS socket: newline-delimited JSON-RPC 2.0 on a Unix stream socket.
//! Each connection has a reader of lines and a writer fed by its session's
//! queue (`session.rs`: requests, answers, notifications).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::rpc::{self, Context};
use super::session::Session;

pub const MAX_LINE: usize = 64 * 1024;
pub const MAX_CLIENTS: usize = 64;
pub use super::session::MAX_IN_FLIGHT;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{path}: another tillpay is already listening there")]
    InUse { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Binds the socket file: a stale file left by a crash is replaced, a live
/// one is an error. The file gets `mode`.
pub async fn bind(path: &Path, mode: u32) -> Result<UnixListener, BindError> {
    let io = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(BindError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    Ok(listener)
}

/// Who may talk to the daemon: root always; with an allow-list, only its
/// uids; without one, whoever the socket's file mode lets in.
pub fn peer_allowed(uid: u32, allowed: &[u32]) -> bool {
    uid == 0 || allowed.is_empty() || allowed.contains(&uid)
}

pub struct Server {
    pub ctx: Arc<Context>,
    pub allowed_uids: Vec<u32>,
}

impl Server {
    /// Serves until the listener fails or the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let uid = stream.peer_cred().map(|c| c.uid()).ok();
            if !uid.is_some_and(|u| peer_allowed(u, &self.allowed_uids)) {
                tracing::warn!(uid = ?uid, "refused a POS client not in pos.allowed_uids");
                refuse(
                    stream,
                    -32000,
                    "this user may not use tillpay (pos.allowed_uids)",
                )
                .await;
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                refuse(stream, -32000, "too many clients").await;
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.connection(stream).await;
                drop(permit);
            });
        }
    }

    async fn connection(&self, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let (session, mut rx) = Session::open(self.ctx.clone());
        let writer = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let mut line = msg.to_string();
                line.push('\n');
                if write.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let mut reader = BufReader::new(read);
        loop {
            let line = tokio::select! {
                line = read_line(&mut reader) => line,
                _ = session.dropped.notified() => {
                    // Not reading: close it now rather than queue for ever.
                    writer.abort();
                    return;
                }
            };
            match line {
                Line::Eof => break,
                Line::TooLong => {
                    session
                        .say(rpc::error(
                            None,
                            rpc::INVALID_REQUEST,
                            format!("line longer than {MAX_LINE} bytes"),
                        ))
                        .await;
                    break;
                }
                Line::Data(bytes) => {
                    if !session.take(&bytes).await {
                        break;
                    }
                }
            }
        }
        drop(session);
        // Let queued answers go out; requests still running finish on
        // their own (a charge is not stopped by its client leaving).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
    }
}

async fn refuse(mut stream: UnixStream, code: i64, message: &str) {
    let mut line = rpc::error(None, code, message).to_string();
    line.push('\n');
    let _ = stream.write_all(line.as_bytes()).await;
}

enum Line {
    Data(Vec<u8>),
    TooLong,
    Eof,
}

/// Reads one `\n`-terminated line of at most [`MAX_LINE`] bytes without
/// ever buffering more than that.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Line {
    let mut line = Vec::new();
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) => b,
            Err(_) => return Line::Eof,
        };
        if buf.is_empty() {
            return if line.is_empty() {
                Line::Eof
            } else {
                Line::Data(line)
            };
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                if line.len() + i > MAX_LINE {
                    return Line::TooLong;
                }
                line.extend_from_slice(&buf[..i]);
                r.consume(i + 1);
                return Line::Data(line);
            }
            None => {
                let n = buf.len();
                if line.len() + n > MAX_LINE {
                    return Line::TooLong;
                }
                line.extend_from_slice(buf);
                r.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_allowed_uids_pass() {
        assert!(peer_allowed(0, &[1000]));
        assert!(peer_allowed(1000, &[1000]));
        assert!(!peer_allowed(1001, &[1000]));
        assert!(peer_allowed(1234, &[]));
    }

    #[tokio::test]
    async fn lines_are_capped_without_buffering_more() {
        let mut input: &[u8] = b"{\"a\":1}\n";
        assert!(matches!(read_line(&mut input).await, Line::Data(d) if d == b"{\"a\":1}"));
        let big = vec![b'x'; MAX_LINE + 10];
        let mut input: &[u8] = &big;
        assert!(matches!(read_line(&mut input).await, Line::TooLong));
    }
}
