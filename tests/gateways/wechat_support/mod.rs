//! Shared by the WeChat integration tests: the simulator on loopback and a
//! client config pointing at it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tillpay::gateway::wechat::xml;
use tillpay::gateway::wechat::{WechatConfig, WechatSignType};
use tillpay::sim::http::{serve, BoxFuture, Handler, SimRequest, SimResponse};
use tillpay::sim::ledger::Ledger;
use tillpay::sim::wechat::WechatSim;

pub const APPID: &str = "wx2421b1c4370ec43b";
pub const MCH_ID: &str = "10000100";
pub const API_KEY: &str = "8934e7d15453e97507ef794cf7b0519d";
pub const TILL: &str = "S001-T03";

pub fn config(base_url: &str, sign_type: WechatSignType) -> WechatConfig {
    WechatConfig {
        base_url: base_url.to_string(),
        backup_url: None,
        appid: APPID.to_string(),
        mch_id: MCH_ID.to_string(),
        sub_mch_id: None,
        sub_appid: None,
        api_key: API_KEY.to_string(),
        sign_type,
        client_identity: None,
        ca_pem: None,
        min_reverse_delay: Duration::ZERO,
    }
}

/// The simulator, with every request it received (parsed) on record.
pub struct Recorder {
    pub sim: WechatSim,
    pub seen: Mutex<Vec<(String, BTreeMap<String, String>)>>,
}

impl Handler for Recorder {
    fn handle(&self, req: SimRequest) -> BoxFuture<'_, SimResponse> {
        Box::pin(async move {
            if let Ok(fields) = xml::parse(&req.body) {
                self.seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((req.path.clone(), fields));
            }
            self.sim.respond(&req)
        })
    }
}

impl Recorder {
    pub fn requests(&self) -> Vec<(String, BTreeMap<String, String>)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub struct Running {
    pub base_url: String,
    pub ledger: Arc<Ledger>,
    pub recorder: Arc<Recorder>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the WeChat simulator on 127.0.0.1, any free port, serving
/// today's bill (as training does).
pub async fn start_sim(time_unit: Duration) -> Running {
    start(time_unit, true).await
}

/// Starts the WeChat simulator with bills from 09:00 the next day only,
/// as WeChat serves them.
pub async fn start_strict_sim(time_unit: Duration) -> Running {
    start(time_unit, false).await
}

async fn start(time_unit: Duration, same_day_bills: bool) -> Running {
    let ledger = Arc::new(Ledger::new(time_unit));
    let sim = WechatSim::new(ledger.clone(), APPID, MCH_ID, API_KEY);
    let sim = if same_day_bills {
        sim.with_same_day_bills()
    } else {
        sim
    };
    let recorder = Arc::new(Recorder {
        sim,
        seen: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(serve(listener, recorder.clone()));
    Running {
        base_url: format!("http://{addr}"),
        ledger,
        recorder,
        task,
    }
}
