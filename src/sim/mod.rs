//! The gateway simulator: WeChat Pay v2 and v3 and Alipay dialects on loopback,
//! with a ledger of orders and money. Used by `tillpay demo`, training mode
//! and the tests. It follows the gateways' documented behaviour, not
//! tillpay's client.

pub mod acquirer;
pub mod alipay;
pub mod behaviour;
pub mod http;
pub mod ledger;
pub mod pty;
pub mod wechat;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::gateway::acquirer::config::{AcquirerConfig, Keys as AcquirerKeys};
use crate::gateway::alipay::AlipayConfig;
use crate::gateway::rsa as key_parse;
use crate::gateway::wechat::v3::config::{AnswerKey, WechatV3Config};
use crate::gateway::wechat::v3::request::Account;
use crate::gateway::wechat::{WechatConfig, WechatSignType};
use http::{BoxFuture, Handler, SimRequest, SimResponse};
use ledger::Ledger;

/// The simulator's merchant credentials: public test values, never real.
pub const WECHAT_APPID: &str = "wxd930ea5d5a258f4f";
pub const WECHAT_MCH_ID: &str = "10000100";
pub const WECHAT_API_KEY: &str = "192006250b4c09247ec02edce69f6a2d";
pub const ALIPAY_APP_ID: &str = alipay::keys::DEMO_APP_ID;

/// Which WeChat Pay API a till's config for the simulator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WechatApi {
    #[default]
    V2,
    V3,
}

/// Every dialect on one loopback port: WeChat v2's paths (`/pay/…`,
/// `/secapi/…`), v3's (`/v3/…`) and Alipay's gateway (`/gateway.do`,
/// bill downloads).
struct Router {
    wechat: Arc<dyn Handler>,
    wechat_v3: Arc<dyn Handler>,
    alipay: Arc<dyn Handler>,
    acquirer: Arc<dyn Handler>,
}

impl Handler for Router {
    fn handle(&self, req: SimRequest) -> BoxFuture<'_, SimResponse> {
        // The acquirer's `/pay/gateway` before WeChat's `/pay/…`.
        if req.path == "/pay/gateway" || req.path == "/gateway" {
            self.acquirer.handle(req)
        } else if req.path.starts_with("/pay/") || req.path.starts_with("/secapi/") {
            self.wechat.handle(req)
        } else if req.path.starts_with("/v3/") {
            self.wechat_v3.handle(req)
        } else {
            self.alipay.handle(req)
        }
    }
}

pub struct Simulator {
    pub addr: SocketAddr,
    pub ledger: Arc<Ledger>,
    wechat: Arc<wechat::WechatSim>,
    pub wechat_v3: Arc<wechat::v3::WechatV3Sim>,
    pub acquirer: Arc<acquirer::AcquirerSim>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Simulator {
    /// Starts both dialects on 127.0.0.1 (a free port). `time_unit` is one
    /// "second" of simulated customer behaviour.
    pub async fn start(time_unit: Duration) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ledger = Arc::new(Ledger::new(time_unit));
        // Training and tests only have today: serve today's bills too.
        let wechat = Arc::new(
            wechat::WechatSim::new(ledger.clone(), WECHAT_APPID, WECHAT_MCH_ID, WECHAT_API_KEY)
                .with_same_day_bills(),
        );
        let wechat_v3 = Arc::new(
            wechat::v3::WechatV3Sim::demo(ledger.clone())
                .map_err(std::io::Error::other)?
                .with_same_day_bills(),
        );
        let acquirer = Arc::new(acquirer::AcquirerSim::new(ledger.clone()).with_same_day_bills());
        let router = Arc::new(Router {
            wechat: wechat.clone(),
            wechat_v3: wechat_v3.clone(),
            acquirer: acquirer.clone(),
            // Training and tests only have today: serve today's bill too.
            alipay: Arc::new(
                alipay::AlipaySim::demo(ledger.clone())
                    .map_err(std::io::Error::other)?
                    .with_same_day_bills(),
            ),
        });
        let task = tokio::spawn(http::serve(listener, router));
        Ok(Simulator {
            addr,
            ledger,
            wechat,
            wechat_v3,
            acquirer,
            task,
        })
    }

    pub fn wechat_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn alipay_gateway_url(&self) -> String {
        format!("http://{}/gateway.do", self.addr)
    }

    /// A till's `[wechat]` config for this simulator, which from now on
    /// refuses (and counts) a reverse sooner than `min_reverse_delay`.
    pub fn wechat_config(&self, min_reverse_delay: Duration) -> WechatConfig {
        self.wechat.enforce_min_reverse_delay(min_reverse_delay);
        WechatConfig {
            base_url: self.wechat_base_url(),
            backup_url: None,
            appid: WECHAT_APPID.into(),
            mch_id: WECHAT_MCH_ID.into(),
            sub_mch_id: None,
            sub_appid: None,
            api_key: WECHAT_API_KEY.into(),
            sign_type: WechatSignType::HmacSha256,
            client_identity: None,
            ca_pem: None,
            min_reverse_delay,
        }
    }

    /// A till's `[wechat]` config with `api = "v3"` for this simulator's
    /// demo merchant, answers verified with its WeChat Pay public key (and
    /// its platform certificate, as during a migration); the simulator from
    /// now on refuses (and counts) a reverse sooner than `min_reverse_delay`.
    pub fn wechat_v3_config(&self, min_reverse_delay: Duration) -> std::io::Result<WechatV3Config> {
        use wechat::v3::keys;
        self.wechat_v3.enforce_min_reverse_delay(min_reverse_delay);
        let public_key = key_parse::parse_public_key(keys::WECHATPAY_PUBLIC_KEY_PEM)
            .map_err(std::io::Error::other)?;
        let key = |id: &str, cert_pem: Option<&str>| AnswerKey {
            id: id.to_string(),
            public_key: public_key.clone(),
            file: "<simulator>".into(),
            cert_pem: cert_pem.map(str::to_string),
        };
        Ok(WechatV3Config {
            base_url: self.wechat_base_url(),
            backup_url: None,
            account: Account::Direct {
                appid: keys::APPID.into(),
                mchid: keys::MCHID.into(),
            },
            private_key_pem: keys::MERCHANT_PRIVATE_KEY_PEM.into(),
            cert_serial_no: keys::MERCHANT_SERIAL.into(),
            merchant_cert: None,
            answer_keys: vec![
                key(keys::PUBLIC_KEY_ID, None),
                key(keys::PLATFORM_SERIAL, Some(keys::PLATFORM_CERT_PEM)),
            ],
            store_id: None,
            ca_pem: None,
            min_reverse_delay,
        })
    }

    /// A till's `[acquirer]` config for this simulator's acquirer, which
    /// from now on refuses (and counts) a reverse of a WeChat payment sooner
    /// than `min_reverse_delay`.
    pub fn acquirer_config(&self, min_reverse_delay: Duration) -> AcquirerConfig {
        self.acquirer.enforce_min_reverse_delay(min_reverse_delay);
        AcquirerConfig {
            gateway_url: format!("http://{}/pay/gateway", self.addr),
            bill_url: format!("http://{}/gateway", self.addr),
            mch_id: acquirer::MCH_ID.into(),
            keys: AcquirerKeys::Md5 {
                key: acquirer::KEY.into(),
            },
            op_user_id: None,
            shop_id: None,
            ca_pem: None,
            min_reverse_delay,
        }
    }

    /// Writes the acquirer's merchant key into `dir` (0600) and returns an
    /// `[acquirer]` table for this simulator's acquirer.
    pub fn write_acquirer_table(
        &self,
        dir: &Path,
        min_reverse_delay_ms: u64,
    ) -> std::io::Result<String> {
        use std::os::unix::fs::PermissionsExt;
        self.acquirer
            .enforce_min_reverse_delay(Duration::from_millis(min_reverse_delay_ms));
        let key = dir.join("acquirer-key");
        std::fs::write(&key, acquirer::KEY)?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        Ok(format!(
            "[acquirer]\ngateway_url = \"http://{addr}/pay/gateway\"\nbill_url = \"http://{addr}/gateway\"\nmch_id = {:?}\nkey_file = {:?}\nmin_reverse_delay_ms = {min_reverse_delay_ms}\n",
            acquirer::MCH_ID,
            key.display().to_string(),
            addr = self.addr,
        ))
    }

    /// A till's `[alipay]` config for this simulator.
    pub fn alipay_config(&self) -> AlipayConfig {
        alipay::demo_client_config(&self.alipay_gateway_url())
    }

    /// Writes the credential files into `dir` (secrets 0600) and returns
    /// the `[wechat]` and `[alipay]` tables of a config for this simulator,
    /// which from now on refuses (and counts) a reverse sooner than
    /// `min_reverse_delay_ms`.
    pub fn write_config_tables(
        &self,
        dir: &Path,
        min_reverse_delay_ms: u64,
        api: WechatApi,
    ) -> std::io::Result<String> {
        let delay = Duration::from_millis(min_reverse_delay_ms);
        self.wechat.enforce_min_reverse_delay(delay);
        self.wechat_v3.enforce_min_reverse_delay(delay);
        use std::os::unix::fs::PermissionsExt;
        let write = |name: &str, text: &str, mode: u32| -> std::io::Result<String> {
            let p = dir.join(name);
            std::fs::write(&p, text)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
            Ok(p.display().to_string())
        };
        let key = write("wechat-api-key", WECHAT_API_KEY, 0o600)?;
        let app_key = write(
            "alipay-app-private-key.pem",
            alipay::keys::DEMO_APP_PRIVATE_KEY_PEM,
            0o600,
        )?;
        let ali_pub = write(
            "alipay-public-key.pem",
            alipay::keys::SIM_PUBLIC_KEY_PEM,
            0o644,
        )?;
        let wechat = match api {
            WechatApi::V2 => format!(
                "[wechat]\nbase_url = {:?}\nappid = {WECHAT_APPID:?}\nmch_id = {WECHAT_MCH_ID:?}\napi_key_file = {key:?}\nmin_reverse_delay_ms = {min_reverse_delay_ms}\n",
                self.wechat_base_url(),
            ),
            WechatApi::V3 => {
                use wechat::v3::keys;
                let private = write("wechat-apiclient_key.pem", keys::MERCHANT_PRIVATE_KEY_PEM, 0o600)?;
                let cert = write("wechat-apiclient_cert.pem", keys::MERCHANT_CERT_PEM, 0o644)?;
                let public = write("wechatpay-public-key.pem", keys::WECHATPAY_PUBLIC_KEY_PEM, 0o644)?;
                format!(
                    "[wechat]\napi = \"v3\"\nbase_url = {:?}\nappid = {:?}\nmch_id = {:?}\ncert_key_file = {private:?}\ncert_file = {cert:?}\nwechatpay_public_key_id = {:?}\nwechatpay_public_key_file = {public:?}\nmin_reverse_delay_ms = {min_reverse_delay_ms}\n",
                    self.wechat_base_url(),
                    keys::APPID,
                    keys::MCHID,
                    keys::PUBLIC_KEY_ID,
                )
            }
        };
        Ok(format!(
            "{wechat}\n[alipay]\ngateway_url = {:?}\napp_id = {ALIPAY_APP_ID:?}\napp_private_key_file = {app_key:?}\nalipay_public_key_file = {ali_pub:?}\n",
            self.alipay_gateway_url(),
        ))
    }
}

#[cfg(test)]
mod tests {
    /// The simulator stands for the gateways: it parses requests, checks
    /// signatures and writes answers with code of its own. From the
    /// clients it may take only what configures a till for it, the PEM key
    /// decoding and the answer vocabulary. Test files may cross-check with
    /// the clients' code on purpose.
    #[test]
    fn the_simulator_shares_no_protocol_code_with_the_clients() {
        let allowed = [
            "crate::gateway::RevokeEffect",
            "crate::gateway::alipay::AlipayConfig",
            "crate::gateway::rsa as key_parse",
            "crate::gateway::wechat::{WechatConfig, WechatSignType}",
            "crate::gateway::wechat::v3::config::{AnswerKey, WechatV3Config}",
            "crate::gateway::wechat::v3::request::Account",
            "crate::gateway::acquirer::config::{AcquirerConfig, Keys as AcquirerKeys}",
            "crate::gateway::alipay::AlipayGateway::new",
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim");
        let mut stack = vec![root];
        let mut offences = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("src/sim readable") {
                let path = entry.expect("entry").path();
                let name = path.to_string_lossy().to_string();
                if path.is_dir() {
                    if !name.ends_with("/tests") {
                        stack.push(path);
                    }
                    continue;
                }
                if name.ends_with("tests.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("readable");
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                for line in code.lines().filter(|l| l.contains("crate::gateway::")) {
                    if !allowed.iter().any(|a| line.contains(a)) {
                        offences.push(format!("{name}: {}", line.trim()));
                    }
                }
            }
        }
        assert!(
            offences.is_empty(),
            "simulator code using the clients':\n{}",
            offences.join("\n")
        );
    }
}
