//! WeChat Pay's backup domain. WeChat runs `api2.mch.weixin.qq.com` for
//! cross-city disaster recovery (跨城冗灾), for v2 and v3 alike: when the
//! primary cannot be connected to, the same request may go there.
//!
//! Only a request that provably never left moves to the other domain: a
//! failure to connect (DNS, refused, connect timeout, TLS handshake). Once
//! bytes may have reached a server the answer is unknown and stays so
//! (payment-rules.md §4): the order query decides, on whichever domain
//! answers, and a pay request is never sent a second time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::gateway::Route;

/// The official primary; the backup is on by default only for it.
pub const OFFICIAL_PRIMARY: &str = "https://api.mch.weixin.qq.com";
pub const OFFICIAL_BACKUP: &str = "https://api2.mch.weixin.qq.com";

/// After the primary refused a connection, requests try the backup first
/// for this long, so a dead primary does not cost a connect timeout on
/// every call.
const BACKUP_FIRST_FOR: Duration = Duration::from_secs(300);

/// The default backup for a base URL: WeChat's for WeChat's primary, none
/// for anything else (a simulator, a proxy, the HK domain).
pub fn default_backup(base_url: &str) -> Option<String> {
    (base_url.trim_end_matches('/') == OFFICIAL_PRIMARY).then(|| OFFICIAL_BACKUP.to_string())
}

/// The base URLs of one client and which goes first.
pub struct Hosts {
    primary: String,
    backup: Option<String>,
    backup_first_until: Mutex<Option<Instant>>,
}

impl Hosts {
    pub fn new(primary: &str, backup: Option<&str>) -> Hosts {
        Hosts {
            primary: primary.trim_end_matches('/').to_string(),
            backup: backup
                .map(|b| b.trim_end_matches('/').to_string())
                .filter(|b| !b.is_empty()),
            backup_first_until: Mutex::new(None),
        }
    }

    pub fn route(&self) -> Route {
        Route {
            primary: self.primary.clone(),
            backup: self.backup.clone(),
            using_backup: self.backup.is_some() && self.backup_first(),
        }
    }

    fn backup_first(&self) -> bool {
        let until = *self
            .backup_first_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    fn mark_primary_down(&self, down: bool) {
        *self
            .backup_first_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = down.then(|| Instant::now() + BACKUP_FIRST_FOR);
    }

    /// Sends one request, built by `build` for a base URL. A failure to
    /// connect to the first domain sends it to the other; any other error,
    /// or a failure to connect to both, is returned as it is (the second
    /// one's).
    pub async fn send(
        &self,
        path: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let Some(backup) = &self.backup else {
            return build(&self.primary).send().await;
        };
        let backup_first = self.backup_first();
        let (first, second) = if backup_first {
            (backup, &self.primary)
        } else {
            (&self.primary, backup)
        };
        match build(first).send().await {
            Err(e) if e.is_connect() => {
                tracing::warn!(
                    path,
                    from = %first,
                    to = %second,
                    error = %e,
                    "wechat: cannot connect (nothing was sent); sending the request to the other domain"
                );
                let answer = build(second).send().await;
                // Whether the primary is the one to avoid now.
                match &answer {
                    Err(e) if e.is_connect() => {}
                    _ => self.mark_primary_down(!backup_first),
                }
                answer
            }
            answer => answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_official_primary_gets_the_official_backup_by_default() {
        assert_eq!(
            default_backup("https://api.mch.weixin.qq.com/").as_deref(),
            Some(OFFICIAL_BACKUP)
        );
        assert_eq!(default_backup("http://127.0.0.1:9000"), None);
        assert_eq!(default_backup("https://apihk.mch.weixin.qq.com"), None);
    }

    #[test]
    fn an_empty_backup_is_none_and_the_route_says_which_goes_first() {
        let h = Hosts::new("http://a/", Some(""));
        assert_eq!(h.route().backup, None);
        let h = Hosts::new("http://a", Some("http://b/"));
        assert_eq!(h.route().backup.as_deref(), Some("http://b"));
        assert!(!h.route().using_backup);
        h.mark_primary_down(true);
        assert!(h.route().using_backup);
        h.mark_primary_down(false);
        assert!(!h.route().using_backup);
    }
}
