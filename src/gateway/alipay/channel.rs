//! Alipay as a registered channel: its payment codes, its `[alipay]`
//! table and its bill.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::config::AlipayConfig;
use crate::domain::Provider;
use crate::gateway::bill::{Bill, BillError};
use crate::gateway::channel::{BillSource, Channel, ChannelConfig};
use crate::gateway::{Gateway, SetupError};

pub struct Alipay;

/// The registry's entry (`gateway/mod.rs`).
pub static CHANNEL: Alipay = Alipay;

impl Channel for Alipay {
    fn name(&self) -> &'static str {
        "alipay"
    }

    fn carries(&self) -> &'static [Provider] {
        &[Provider::Alipay]
    }

    fn check_config(
        &self,
        table: toml::Value,
        base: &Path,
    ) -> Result<Arc<dyn ChannelConfig>, SetupError> {
        Ok(Arc::new(super::config::check(table, base)?))
    }

    /// The zip Alipay's bill URL serves, or the detail CSV inside it.
    fn parse_bill(&self, input: &mut dyn BillSource, till_id: &str) -> Result<Bill, BillError> {
        super::bill::parse_reader(input, till_id)
    }

    fn bill_help(&self) -> &'static str {
        "Alipay's bill zip, or the detail CSV inside it"
    }
}

impl ChannelConfig for AlipayConfig {
    fn name(&self) -> &'static str {
        "alipay"
    }

    fn endpoint(&self) -> &str {
        &self.gateway_url
    }

    fn gateway(
        &self,
        till_id: &str,
        http_timeout: Duration,
    ) -> Result<Arc<dyn Gateway>, SetupError> {
        Ok(Arc::new(super::AlipayGateway::new(
            self,
            till_id,
            http_timeout,
        )?))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
