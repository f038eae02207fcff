//! WeChat Pay v2 as a registered channel: its payment codes, its
//! `[wechat]` table, its bill and its doctor checks.

use std::any::Any;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::config::WechatConfig;
use super::v3::WechatV3Config;
use crate::domain::Provider;
use crate::gateway::bill::{Bill, BillError};
use crate::gateway::channel::{BillSource, Channel, ChannelConfig, Finding, Health};
use crate::gateway::{Gateway, SetupError};

pub struct Wechat;

/// The registry's entry (`gateway/mod.rs`).
pub static CHANNEL: Wechat = Wechat;

impl Channel for Wechat {
    fn name(&self) -> &'static str {
        "wechat"
    }

    fn carries(&self) -> &'static [Provider] {
        &[Provider::Wechat]
    }

    fn check_config(
        &self,
        table: toml::Value,
        base: &Path,
    ) -> Result<Arc<dyn ChannelConfig>, SetupError> {
        // `api` picks the protocol; the rest of the table is that
        // protocol's (v2 by default: every merchant has v2 keys until they
        // move to v3).
        match table.get("api").map(|v| v.as_str()) {
            None | Some(Some("v2")) => Ok(Arc::new(super::config::check(table, base)?)),
            Some(Some("v3")) => Ok(Arc::new(super::v3::config::check(table, base)?)),
            Some(other) => Err(crate::gateway::setup::invalid(
                "wechat.api",
                format!("{} must be \"v2\" or \"v3\"", other.unwrap_or("this value")),
            )),
        }
    }

    fn parse_bill(&self, input: &mut dyn BillSource, till_id: &str) -> Result<Bill, BillError> {
        super::bill::parse(BufReader::with_capacity(1 << 16, input), till_id)
    }

    fn bill_help(&self) -> &'static str {
        "WeChat's `downloadbill` text (bill_type ALL)"
    }
}

impl ChannelConfig for WechatConfig {
    fn name(&self) -> &'static str {
        "wechat"
    }

    fn endpoint(&self) -> &str {
        &self.base_url
    }

    fn gateway(
        &self,
        till_id: &str,
        http_timeout: Duration,
    ) -> Result<Arc<dyn Gateway>, SetupError> {
        Ok(Arc::new(super::WechatGateway::new(
            self,
            till_id,
            http_timeout,
        )?))
    }

    /// The client certificate `/secapi/` calls need: expired or soon to.
    fn doctor(&self) -> Vec<Finding> {
        let Some(id) = &self.client_identity else {
            return Vec::new();
        };
        vec![expiry_finding(
            "wechat certificate",
            &id.cert_file,
            &id.cert_pem,
            chrono::Utc::now(),
        )]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A certificate's expiry as a doctor line: failed when expired, a warning
/// within 30 days, else when it is valid until.
pub(super) fn expiry_finding(
    what: &str,
    file: &Path,
    pem: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Finding {
    let file = file.display();
    match super::cert::not_after(pem) {
        Ok(t) => {
            let left = t - now;
            if left < chrono::Duration::zero() {
                Finding::new(Health::Fail, what, format!("{file} expired on {t}: download a new one in the merchant portal (API安全)"))
            } else if left < chrono::Duration::days(30) {
                let days = left.num_days();
                Finding::new(Health::Warn, what, format!("{file} expires on {t}, in {days} days: renew it soon"))
            } else {
                Finding::new(Health::Ok, what, format!("{file} valid until {t}"))
            }
        }
        Err(e) => Finding::new(Health::Fail, what, format!("{file}: {e}")),
    }
}

impl ChannelConfig for WechatV3Config {
    fn name(&self) -> &'static str {
        "wechat"
    }

    fn endpoint(&self) -> &str {
        &self.base_url
    }

    fn gateway(
        &self,
        till_id: &str,
        http_timeout: Duration,
    ) -> Result<Arc<dyn Gateway>, SetupError> {
        Ok(Arc::new(super::v3::WechatV3Gateway::new(
            self,
            till_id,
            http_timeout,
        )?))
    }

    fn doctor(&self) -> Vec<Finding> {
        super::v3::doctor::findings(self, chrono::Utc::now())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
