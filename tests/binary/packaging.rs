//! What ships beside the binary: the example config, the udev rules, the
//! systemd units.

use std::os::unix::fs::PermissionsExt;

fn repo(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .expect("file in the repo")
}

#[test]
fn the_example_config_is_accepted_with_every_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = repo("config/tillpay.toml");
    for (name, content, mode) in [
        ("wechat-api-key", "192006250b4c09247ec02edce69f6a2d", 0o600),
        ("apiclient_cert.pem", "CERT", 0o644),
        ("apiclient_key.pem", "KEY", 0o600),
        ("alipay-app-private-key.pem", "PRIV", 0o600),
        ("alipay-public-key.pem", "PUB", 0o644),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        text = text.replace(&format!("/etc/tillpay/{name}"), &p.display().to_string());
    }
    let cfg = tillpay::config::Config::parse(&text, &dir.path().join("tillpay.toml"))
        .expect("the example config is valid");
    assert_eq!(
        cfg.payment,
        tillpay::config::PaymentConfig::default(),
        "production defaults"
    );
    assert!(
        cfg.scanner.is_some() && cfg.channel("wechat").is_some() && cfg.channel("alipay").is_some()
    );
    // Every key of the contract is shown in the example.
    for key in [
        "id",
        "state_dir",
        "socket",
        "socket_mode",
        "allowed_uids",
        "device",
        "baud",
        "frame_gap_ms",
        "scan_timeout_ms",
        "poll_interval_ms",
        "pay_timeout_ms",
        "revoke_interval_ms",
        "revoke_max_attempts",
        "http_timeout_ms",
        "max_amount",
        "base_url",
        "appid",
        "mch_id",
        "sub_mch_id",
        "sub_appid",
        "api_key_file",
        "sign_type",
        "cert_file",
        "cert_key_file",
        "ca_file",
        "min_reverse_delay_ms",
        "gateway_url",
        "app_id",
        "app_private_key_file",
        "alipay_public_key_file",
    ] {
        assert!(
            text.contains(&format!("{key} =")),
            "the example does not show {key}"
        );
    }
}

/// A udev rule line: comma-separated `KEY{attr}OP"value"` pairs.
fn parse_rule(line: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut out = Vec::new();
    for part in line.split(", ") {
        let part = part.trim();
        let op_at = ["==", "!=", "+=", "-=", ":=", "="]
            .iter()
            .filter_map(|op| part.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, _)| *i)
            .ok_or_else(|| format!("no operator in {part:?}"))?;
        let (key, rest) = part.split_at(op_at.0);
        let value = rest[op_at.1.len()..].to_string();
        if !(value.starts_with('"') && value.ends_with('"') && value.len() >= 2) {
            return Err(format!("value not quoted in {part:?}"));
        }
        let base = key.split('{').next().unwrap_or("");
        const KEYS: [&str; 9] = [
            "SUBSYSTEM",
            "KERNEL",
            "ATTRS",
            "SYMLINK",
            "GROUP",
            "MODE",
            "ENV",
            "ACTION",
            "TAG",
        ];
        if !KEYS.contains(&base) {
            return Err(format!("unknown key {key:?}"));
        }
        out.push((
            key.to_string(),
            op_at.1.to_string(),
            value.trim_matches('"').to_string(),
        ));
    }
    Ok(out)
}

#[test]
fn the_udev_rules_parse_and_name_the_scanner_away_from_modemmanager() {
    let rules = repo("udev/60-tillpay-scanner.rules");
    let mut active = 0;
    for line in rules.lines() {
        let rule = line.trim_start_matches("# ").trim();
        if !rule.starts_with("SUBSYSTEM==") {
            continue;
        }
        let pairs = parse_rule(rule).unwrap_or_else(|e| panic!("{e}: {line}"));
        let has =
            |k: &str, op: &str, v: &str| pairs.iter().any(|p| p.0 == k && p.1 == op && p.2 == v);
        if has("SUBSYSTEM", "==", "input") {
            // A keyboard-mode gun: its own stable name, the input group.
            assert!(has("SYMLINK", "+=", "tillpay-scanner-kbd"), "{line}");
            assert!(has("GROUP", "=", "input"), "{line}");
            continue;
        }
        assert!(has("SYMLINK", "+=", "tillpay-scanner"), "{line}");
        assert!(has("GROUP", "=", "dialout"), "{line}");
        assert!(has("ENV{ID_MM_DEVICE_IGNORE}", "=", "1"), "{line}");
        if !line.starts_with('#') {
            active += 1;
        }
    }
    assert!(
        active >= 2,
        "examples for common COM-mode scanners are active"
    );
}

#[test]
fn the_service_unit_waits_for_readiness_and_is_locked_down() {
    let unit = repo("systemd/tillpay.service");
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "User=tillpay",
        "StateDirectory=tillpay",
        "ConfigurationDirectory=tillpay",
        "SupplementaryGroups=dialout",
        "DeviceAllow=/dev/tillpay-scanner rw",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(needed)),
            "tillpay.service lacks {needed}"
        );
    }
    let socket = repo("systemd/tillpay.socket");
    assert!(
        socket.contains("SocketMode=0660") && socket.contains("ListenStream=/run/tillpay/pos.sock")
    );
}
