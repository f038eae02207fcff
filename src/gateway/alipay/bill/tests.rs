use std::io::Write;

use super::*;

const HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

fn row(trade: &str, otn: &str, kind: &str, terminal: &str, amount: &str, batch: &str) -> String {
    format!(
        "{trade}\t,{otn}\t,{kind}\t,coffee\t,2026-11-22 10:00:00\t,2026-11-22 10:00:05\t,\t,\t,\t,{terminal}\t,abc***@x.com\t,{amount},{amount},0.00,0.00,0.00,0.00,0.00,\t,0.00,0.00,{batch}\t,0.00,0.00,\t"
    )
}

fn detail(rows: &[String], trades: &str, refunds: &str) -> Vec<u8> {
    let mut s = String::from("#支付宝业务明细查询\r\n#账号：[20880211096256330156]\r\n#起始日期：[2026年11月22日 00:00:00]   终止日期：[2026年11月23日 00:00:00]\r\n#-----------------------------------------业务明细列表----------------------------------------\r\n");
    s.push_str(HEADER);
    s.push_str("\r\n");
    for r in rows {
        s.push_str(r);
        s.push_str("\r\n");
    }
    s.push_str("#-----------------------------------------业务明细列表结束------------------------------------\r\n");
    s.push_str(&format!("#交易合计：{trades}元，商家优惠共0.00元\r\n#退款合计：{refunds}元，商家优惠退款共0.00元\r\n#导出时间：[2026年11月23日 05:46:49]\r\n"));
    encoding_rs::GBK.encode(&s).0.into_owned()
}

fn zipped(detail: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut z = zip::ZipWriter::new(Cursor::new(&mut out));
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("20880211096256330156_20261122_summary.csv", opts)
            .expect("entry");
        z.write_all(&encoding_rs::GBK.encode("#支付宝业务汇总查询\r\n").0)
            .expect("write");
        z.start_file("20880211096256330156_20261122_details.csv", opts)
            .expect("entry");
        z.write_all(detail).expect("write");
        z.finish().expect("finish");
    }
    out
}

fn sample() -> Vec<u8> {
    detail(
        &[
            row("2026112222001", "T1_A1_1", "交易", "T1", "12.34", ""),
            row("2026112222001", "T1_A1_1", "退款", "T1", "-2.34", "R1"),
            row("2026112222002", "T1_A2_1", "交易", "T1", "5.00", ""),
            row(
                "2026112222002",
                "T1_A2_1",
                "退款",
                "T1",
                "-5.00",
                "2026112222002",
            ),
            row("2026112222003", "T9_B1_1", "交易", "T9", "1.00", ""),
        ],
        "3笔，商家实收共18.34",
        "2笔，商家实收退款共-7.34",
    )
}

#[test]
fn the_zip_is_read_and_refunds_are_told_apart() {
    let b = parse_file(&zipped(&sample()), "T1").expect("parses");
    assert_eq!(b.total_rows, 5);
    assert_eq!(b.other_tills, 1);
    let kinds: Vec<_> = b
        .rows
        .iter()
        .map(|r| (r.kind, r.amount.0, r.refund_no.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (RowKind::Payment, 1234, None),
            (RowKind::Refund, 234, Some("R1".into())),
            (RowKind::Payment, 500, None),
            (RowKind::RevokeRefund, 500, None),
        ]
    );
    assert_eq!(b.rows[0].transaction_id, "2026112222001");
}

#[test]
fn the_detail_csv_alone_is_read_too() {
    let b = parse_file(&sample(), "T1").expect("parses");
    assert_eq!(b.rows.len(), 4);
}

#[test]
fn footer_totals_must_match_the_rows() {
    let bad = detail(
        &[row("1", "T1_A1_1", "交易", "T1", "1.00", "")],
        "1笔，商家实收共2.00",
        "0笔，商家实收退款共0.00",
    );
    let e = parse_file(&bad, "T1").unwrap_err().to_string();
    assert!(e.contains("footer"), "{e}");
    let ok = detail(
        &[row("1", "T1_A1_1", "交易", "T1", "1.00", "")],
        "1笔，商家实收共1.00",
        "0笔，商家实收退款共0.00",
    );
    assert!(parse_file(&ok, "T1").is_ok());
}

#[test]
fn truncated_and_garbled_files_are_refused() {
    let full = sample();
    let cut = &full[..full.len() / 2];
    assert!(parse_file(cut, "T1").is_err());
    let z = zipped(&full);
    assert!(parse_file(&z[..z.len() - 40], "T1").is_err(), "a cut zip");
    assert!(parse_file(b"PK\x03\x04garbage", "T1").is_err());
    assert!(parse_file(b"hello", "T1").is_err());
}

#[test]
fn footer_lines_parse() {
    assert_eq!(
        footer_total(
            "交易合计：6笔，商家实收共0.06元，商家优惠共0.00元",
            "交易合计"
        ),
        Some((6, 6))
    );
    assert_eq!(
        footer_total(
            "退款合计：4笔，商家实收退款共-0.04元，商家优惠退款共0.00元",
            "退款合计"
        ),
        Some((4, -4))
    );
}
