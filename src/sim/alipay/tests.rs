//! The embedded keys and the bill zip.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, Local};

use super::bill::DETAIL_HEADER;
use super::keys::*;
use super::AlipaySim;
use crate::domain::{Fen, Provider};
use crate::gateway::rsa::{parse_private_key, parse_public_key, public_key_of};
use crate::sim::behaviour::Behaviour;
use crate::sim::ledger::Ledger;

use crate::gateway::alipay::fixture;

#[test]
fn embedded_keys_are_the_fixture_pairs() {
    let app = parse_private_key(DEMO_APP_PRIVATE_KEY_PEM).expect("app key");
    let sim = parse_private_key(SIM_PRIVATE_KEY_PEM).expect("sim key");
    let app_pub = parse_public_key(DEMO_APP_PUBLIC_KEY_PEM).expect("app public");
    let sim_pub = parse_public_key(SIM_PUBLIC_KEY_PEM).expect("sim public");
    assert_eq!(public_key_of(&app), app_pub);
    assert_eq!(public_key_of(&sim), sim_pub);
    assert_ne!(app_pub, sim_pub);
    assert_eq!(
        parse_public_key(&fixture("demo_app_public_spki.pem")).ok(),
        Some(app_pub)
    );
    assert_eq!(
        parse_public_key(&fixture("sim_public_spki.pem")).ok(),
        Some(sim_pub)
    );
}

struct Entry {
    name: String,
    text: String,
}

fn unzip(bytes: &[u8]) -> Vec<Entry> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).expect("entry");
            let name = encoding_rs::GBK.decode(f.name_raw()).0.into_owned();
            let mut raw = Vec::new();
            f.read_to_end(&mut raw).expect("reads, CRC checked");
            let (text, _, bad) = encoding_rs::GBK.decode(&raw);
            assert!(!bad, "{name} is not GBK");
            assert!(
                std::str::from_utf8(&raw).is_err(),
                "{name} must be GBK, not UTF-8"
            );
            Entry {
                name,
                text: text.into_owned(),
            }
        })
        .collect()
}

// One bill, checked field by field against the documented layout.
#[test]
fn bill_zip_is_the_real_layout_with_correct_rows_and_totals() {
    let ledger = Arc::new(Ledger::new(Duration::from_millis(1)));
    let sim = AlipaySim::demo(ledger.clone()).expect("sim");
    let pay = |otn: &str, fen: u64, b: Behaviour, serial: u64, device: &str, p: Provider| {
        ledger.pay(p, otn, Fen(fen), &b.code(p, serial), device, "咖啡,大杯")
    };
    pay(
        "A",
        10_000,
        Behaviour::PaysAtOnce,
        1,
        "T1",
        Provider::Alipay,
    );
    pay("B", 50, Behaviour::PaysAtOnce, 2, "T1", Provider::Alipay);
    pay("C", 70, Behaviour::NeverConfirms, 3, "T1", Provider::Alipay);
    pay(
        "D",
        80,
        Behaviour::InsufficientFunds,
        4,
        "T1",
        Provider::Alipay,
    );
    pay("E", 90, Behaviour::PaysAtOnce, 5, "T1", Provider::Wechat);
    pay("F", 1_234, Behaviour::PaysAtOnce, 6, "T2", Provider::Alipay);
    ledger.refund("A", "R1", Fen(3_000));
    ledger.revoke(Provider::Alipay, "B", None);
    ledger.revoke(Provider::Alipay, "C", None);
    let trade_b = ledger.order("B").expect("B").transaction_id;

    let today = Local::now().date_naive();
    let zip = sim.bill_zip(today);
    // Entry names are GBK without the UTF-8 flag (general purpose bit 11).
    assert_eq!(&zip[..4], b"PK\x03\x04");
    assert_eq!(u16::from_le_bytes([zip[6], zip[7]]) & (1 << 11), 0);
    // Deflated (method 8), as Alipay's are.
    assert_eq!(u16::from_le_bytes([zip[8], zip[9]]), 8);
    let entries = unzip(&zip);
    let stem = format!("{SIM_PID}0156_{}", today.format("%Y%m%d"));
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{stem}_业务明细.csv"),
            format!("{stem}_业务明细(汇总).csv")
        ]
    );

    let detail = &entries[0].text;
    let lines: Vec<&str> = detail.split("\r\n").collect();
    assert_eq!(lines[0], "#支付宝业务明细查询");
    assert_eq!(lines[1], format!("#账号：[{SIM_PID}0156]"));
    assert!(lines[2].starts_with(&format!("#起始日期：[{}", today.format("%Y年%m月%d日"))));
    assert!(lines[3].starts_with("#---") && lines[3].contains("业务明细列表"));
    assert_eq!(lines[4], DETAIL_HEADER);
    assert_eq!(DETAIL_HEADER.split(',').count(), 25);
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .filter(|l| !l.starts_with('#') && !l.is_empty() && **l != DETAIL_HEADER)
        .map(|l| l.split(',').collect())
        .collect();
    assert!(rows.iter().all(|r| r.len() == 25), "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r[0].ends_with('\t') && r[1].ends_with('\t') && r[2].ends_with('\t')));
    let find = |otn: &str, kind: &str| {
        rows.iter()
            .find(|r| r[1] == format!("{otn}\t") && r[2] == format!("{kind}\t"))
            .cloned()
    };
    let a = find("A", "交易").expect("A trade");
    assert_eq!((a[9], a[11], a[12]), ("T1\t", "100.00", "100.00"));
    assert_eq!(
        a[3], "咖啡，大杯\t",
        "a comma in the subject must not split the row"
    );
    let ar = find("A", "退款").expect("A refund");
    assert_eq!((ar[11], ar[12], ar[21]), ("-30.00", "-30.00", "R1\t"));
    let br = find("B", "退款").expect("B refund by cancel");
    assert_eq!(
        br[21],
        format!("{trade_b}\t"),
        "cancel refund carries the trade number"
    );
    assert_eq!(br[12], "-0.50");
    assert_eq!(find("F", "交易").expect("F")[9], "T2\t");
    for absent in ["C", "D", "E"] {
        assert!(
            rows.iter().all(|r| r[1] != format!("{absent}\t")),
            "{absent}"
        );
    }
    assert_eq!(rows.len(), 5);
    assert!(
        lines.contains(&"#交易合计：3笔，商家实收共112.84元，商家优惠共0.00元"),
        "{detail}"
    );
    assert!(
        lines.contains(&"#退款合计：2笔，商家实收退款共-30.50元，商家优惠退款共0.00元"),
        "{detail}"
    );
    assert!(lines.iter().any(|l| l.starts_with("#导出时间：[")));

    let summary = &entries[1].text;
    assert!(summary.starts_with("#支付宝业务汇总查询\r\n"));
    assert!(summary.contains("合计\t,\t,3,2,82.34,82.34,"), "{summary}");

    // Another day: same files, no rows, zero totals.
    let other = unzip(&sim.bill_zip(today - Days::new(1)));
    assert!(other[0].text.contains("#交易合计：0笔，商家实收共0.00元"));
    assert!(!other[0].text.contains("交易\t,"));
}
