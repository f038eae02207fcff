//! WeChat Pay v2 as a registered channel: its payment codes, its
//! `[wechat]` table, its bill and its doctor checks.

use std::any::Any;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::config::WechatConfig;
use crate::domain::Provider;
use crate::gateway::bill::{Bill, BillError};
use crate::gateway::channel::{
    prefix, BillSource, Channel, ChannelConfig, Finding, Health,
};
use crate::gateway::{Gateway, SetupError};

pub struct Wechat;

/// The registry's entry (`gateway/mod.rs`).
pub static CHANNEL: Wechat = Wechat;

impl Channel for Wechat {
    fn provider(&self) -> Provider {
        Provider::Wechat
    }

    /// 18 digits starting 10-15 (gateway-facts.md §W12).
    fn takes_code(&self, digits: &str) -> bool {
        digits.len() == 18 && prefix(digits).is_some_and(|p| (10..=15).contains(&p))
    }

    fn check_config(
        &self,
        table: toml::Value,
        base: &Path,
    ) -> Result<Arc<dyn ChannelConfig>, SetupError> {
        Ok(Arc::new(super::config::check(table, base)?))
    }

    fn parse_bill(&self, input: &mut dyn BillSource, till_id: &str) -> Result<Bill, BillError> {
        super::bill::parse(BufReader::with_capacity(1 << 16, input), till_id)
    }

    fn bill_help(&self) -> &'static str {
        "WeChat's `downloadbill` text (bill_type ALL)"
    }
}

impl ChannelConfig for WechatConfig {
    fn provider(&self) -> Provider {
        Provider::Wechat
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
        let what = "wechat certificate";
        let file = id.cert_file.display();
        let finding = match super::cert::not_after(&id.cert_pem) {
            Ok(t) => {
                let left = t - chrono::Utc::now();
                if left < chrono::Duration::zero() {
                    Finding::new(Health::Fail, what, format!("{file} expired on {t}: download a new one in the merchant portal (API安全)"))
                } else if left < chrono::Duration::days(30) {
                    let days = left.num_days();
                    let detail = format!("{file} expires on {t}, in {days} days: renew it soon");
                    Finding::new(Health::Warn, what, detail)
                } else {
                    Finding::new(Health::Ok, what, format!("{file} valid until {t}"))
                }
            }
            Err(e) => Finding::new(Health::Fail, what, format!("{file}: {e}")),
        };
        vec![finding]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
