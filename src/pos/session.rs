//! One POS client's session, whatever carries it (a Unix socket line, a
//! WebSocket message): each request runs in its own task, so a long
//! `charge` blocks nothing; answers and every notification go out through
//! one bounded queue; a client that stops reading fills it and is dropped,
//! so it slows nobody else.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;

use super::rpc::{self, Context};

/// Requests one client may have running at once; past it, the client's
/// next message is not read until one ends (back-pressure, nothing dropped).
pub const MAX_IN_FLIGHT: usize = 16;
/// Messages queued for a client before it counts as not reading.
const QUEUE: usize = 256;

pub struct Session {
    ctx: Arc<Context>,
    tx: mpsc::Sender<Value>,
    in_flight: Arc<Semaphore>,
    notices: JoinHandle<()>,
    /// Notified when the client stopped reading its notifications.
    pub dropped: Arc<Notify>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.notices.abort();
    }
}

impl Session {
    /// A session, and the queue of what to send its client.
    pub fn open(ctx: Arc<Context>) -> (Session, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel::<Value>(QUEUE);
        let dropped = Arc::new(Notify::new());
        let notices = tokio::spawn(forward_notifications(
            ctx.engine.subscribe(),
            tx.clone(),
            dropped.clone(),
        ));
        let session = Session {
            ctx,
            tx,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            notices,
            dropped,
        };
        (session, rx)
    }

    /// Queues a message of the session's own (an error about the framing).
    pub async fn say(&self, msg: Value) {
        let _ = self.tx.send(msg).await;
    }

    /// Takes one message of the client. `false`: the client is not reading
    /// its answers, close it.
    pub async fn take(&self, bytes: &[u8]) -> bool {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return true;
        }
        let req = match rpc::parse(bytes) {
            Ok(r) => r,
            Err(resp) => return self.tx.try_send(resp).is_ok(),
        };
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return false;
        };
        let ctx = self.ctx.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let answer = rpc::call(&ctx, &req.method, &req.params).await;
            if let Some(id) = req.id {
                let msg = match answer {
                    Ok(v) => rpc::result(&id, v),
                    Err((code, message)) => rpc::error(Some(&id), code, message),
                };
                let _ = tx.send(msg).await;
            }
            drop(permit);
        });
        true
    }
}

/// Copies engine notifications to one client; a client whose queue is
/// full is not reading, and is dropped.
async fn forward_notifications(
    mut rx: broadcast::Receiver<crate::engine::Notification>,
    tx: mpsc::Sender<Value>,
    dropped: Arc<Notify>,
) {
    let lagged = |why: &str| {
        tracing::warn!("dropping a POS client that {why}");
        dropped.notify_one();
    };
    loop {
        match rx.recv().await {
            Ok(n) => {
                let msg = json!({"jsonrpc": "2.0", "method": n.method(), "params": n.params()});
                match tx.try_send(msg) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        return lagged("does not read its notifications")
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                return lagged("fell behind on notifications")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
