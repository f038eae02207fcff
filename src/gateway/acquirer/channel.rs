//! The acquirer as a registered channel: it carries WeChat, Alipay and
//! UnionPay codes, its `[acquirer]` table, its bill.

use std::any::Any;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::config::AcquirerConfig;
use crate::domain::Provider;
use crate::gateway::bill::{Bill, BillError};
use crate::gateway::channel::{BillSource, Channel, ChannelConfig};
use crate::gateway::{Gateway, SetupError};

pub struct Acquirer;

/// The registry's entry (`gateway/mod.rs`).
pub static CHANNEL: Acquirer = Acquirer;

/// The wallets whose codes an acquirer's gateway takes.
pub static CARRIES: &[Provider] = &[Provider::Wechat, Provider::Alipay, Provider::Unionpay];

impl Channel for Acquirer {
    fn name(&self) -> &'static str {
        "acquirer"
    }

    fn carries(&self) -> &'static [Provider] {
        CARRIES
    }

    fn check_config(&self, table: toml::Value, base: &Path) -> Result<Arc<dyn ChannelConfig>, SetupError> {
        Ok(Arc::new(super::config::check(table, base)?))
    }

    fn parse_bill(&self, input: &mut dyn BillSource, till_id: &str) -> Result<Bill, BillError> {
        super::bill::parse(BufReader::with_capacity(1 << 16, input), till_id)
    }

    fn bill_help(&self) -> &'static str {
        "the acquirer's merchant bill (pay.bill.merchant, bill_type ALL)"
    }
}

impl ChannelConfig for AcquirerConfig {
    fn name(&self) -> &'static str {
        "acquirer"
    }

    fn endpoint(&self) -> &str {
        &self.gateway_url
    }

    fn gateway(&self, till_id: &str, http_timeout: Duration) -> Result<Arc<dyn Gateway>, SetupError> {
        Ok(Arc::new(super::client::AcquirerGateway::new(self, till_id, http_timeout)?))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
