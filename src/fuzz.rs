//! Fuzz entry points: every parser of outside input, one function each,
//! taking arbitrary bytes. A target must never panic, whatever it is fed:
//! the scanner's bytes, a POS line, a WeChat or Alipay answer, a bill, a
//! config file. The same functions run under cargo-fuzz (`fuzz/`, nightly),
//! under the stable mutation fuzzer (`cargo run --release --example fuzz`),
//! and over the committed corpora in `fuzz/corpus/` as ordinary tests.

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::gateway::alipay::{classify as ali, json_scan};
use crate::gateway::wechat::{classify as wx, sign, xml};

/// A target: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// The targets, by the name of their corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("scanner_framer", scanner_framer),
    ("pos_line", pos_line),
    ("wechat_answer", wechat_answer),
    ("alipay_answer", alipay_answer),
    ("wechat_bill", wechat_bill),
    ("alipay_bill", alipay_bill),
    ("config", config),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Bytes from the scan gun, split at the first byte into two reads with a
/// pause between them, then every frame classified.
pub fn scanner_framer(data: &[u8]) {
    let mut framer = crate::scanner::Framer::new(Duration::from_millis(50));
    let start = Instant::now();
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut frames = Vec::new();
    framer.push(&data[..cut], start, &mut frames);
    framer.push(&data[cut..], start + Duration::from_millis(10), &mut frames);
    if let Some(f) = framer.poll_gap(start + Duration::from_secs(1)) {
        frames.push(f);
    }
    for f in &frames {
        if let crate::scanner::Frame::Text(t) = f {
            let _ = crate::scanner::classify(t);
        }
    }
}

/// One line from a POS on the socket.
pub fn pos_line(data: &[u8]) {
    let _ = crate::pos::rpc::parse(data);
}

/// A WeChat Pay v2 answer body, parsed, checked and classified as every
/// call's answer.
pub fn wechat_answer(data: &[u8]) {
    let Ok(fields) = xml::parse(data) else {
        return;
    };
    let _ = sign::verify(
        &fields,
        "192006250b4c09247ec02edce69f6a2d",
        sign::SignType::Md5,
    );
    let reply = wx::Reply::Answer(fields);
    let reply = wx::about_order(reply, "T1_A1_1");
    let _ = wx::pay(&reply);
    let _ = wx::query(&reply);
    let _ = wx::revoke(&reply);
    let _ = wx::revoke_effect(&reply);
    let _ = wx::refund(&reply, "T1_A1_1", "T1_RR1");
    let _ = wx::refund_query(&reply, "T1_A1_1", "T1_RR1");
}

/// An Alipay answer body: the raw-node scan the signature check relies on,
/// the check itself, and every classification of the node.
pub fn alipay_answer(data: &[u8]) {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let key = crate::gateway::rsa::parse_public_key(crate::sim::alipay::keys::SIM_PUBLIC_KEY_PEM);
    if let Ok(key) = key {
        let _ = crate::gateway::alipay::verify_answer(&key, "alipay.trade.pay", body);
    }
    let Some(members) = json_scan::top_level_members(body) else {
        return;
    };
    for (_, raw) in &members {
        let Some(r) = ali::Reply::from_node(raw) else {
            continue;
        };
        let _ = ali::classify_pay(&r, "T1_A1_1");
        let _ = ali::classify_query(&r, "T1_A1_1");
        let _ = ali::classify_cancel(&r);
        let _ = ali::classify_refund(&r, "T1_A1_1");
        let _ = ali::classify_refund_query(&r, "T1_A1_1", "T1_RR1");
        let _ = ali::classify_bill(&r, true);
    }
}

/// A WeChat `downloadbill` text.
pub fn wechat_bill(data: &[u8]) {
    let _ = crate::gateway::wechat::bill::parse(data, "T1");
}

/// An Alipay bill: the zip, or the detail CSV.
pub fn alipay_bill(data: &[u8]) {
    let _ = crate::gateway::alipay::bill::parse_reader(Cursor::new(data), "T1");
}

/// A config file (its secret files do not exist: those checks fail, by
/// name, as they should).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::Config::parse(text, Path::new("/nonexistent/tillpay.toml"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed corpus input, fed to its target: the inputs the
    /// fuzzers found interesting (and any crash they found, once fixed)
    /// stay tested on stable Rust.
    #[test]
    fn the_committed_corpora_replay_without_a_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (name, run) in TARGETS {
            let dir = root.join(name);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let mut n = 0;
            for entry in entries {
                let path = entry.expect("entry").path();
                let data = std::fs::read(&path).expect("readable");
                run(&data);
                n += 1;
            }
            assert!(n >= 3, "{name}: only {n} corpus inputs");
        }
    }
}
