use super::*;

const HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const SUMMARY: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

#[allow(clippy::too_many_arguments)]
fn row(
    device: &str,
    txn: &str,
    otn: &str,
    state: &str,
    settle: &str,
    refund_no: &str,
    refund: &str,
    order: &str,
) -> String {
    let f = [
        "2026-11-22 10:00:00",
        "wx2421b1c4370ec43b",
        "10000100",
        "0",
        device,
        txn,
        otn,
        "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "MICROPAY",
        state,
        "OTHERS",
        "CNY",
        settle,
        "0.00",
        if refund_no.is_empty() { "" } else { "5030" },
        refund_no,
        refund,
        "0.00",
        if refund_no.is_empty() { "" } else { "ORIGINAL" },
        if refund_no.is_empty() { "" } else { "SUCCESS" },
        "coffee",
        "",
        "0.00",
        "0.60%",
        order,
        refund,
        "",
    ];
    f.iter()
        .map(|x| format!("`{x}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn bill(rows: &[String], summary: &str) -> String {
    let mut s = format!("{HEADER}\r\n");
    for r in rows {
        s.push_str(r);
        s.push_str("\r\n");
    }
    s.push_str(SUMMARY);
    s.push_str("\r\n");
    s.push_str(summary);
    s.push_str("\r\n");
    s
}

#[test]
fn rows_of_this_till_are_kept_with_exact_amounts() {
    let rows = [
        row(
            "T1", "4200001", "T1_A1_1", "SUCCESS", "12.34", "", "0.00", "12.34",
        ),
        row(
            "T2", "4200002", "T2_B1_1", "SUCCESS", "1.00", "", "0.00", "1.00",
        ),
        row(
            "T1", "4200001", "T1_A1_1", "REFUND", "0.00", "R1", "2.34", "0.00",
        ),
        row(
            "T1", "4200003", "T1_A2_1", "REVOKED", "0.00", "", "5.00", "5.00",
        ),
    ];
    let text = bill(&rows, "`4,`13.34,`7.34,`0.00,`0.00,`18.34,`7.34");
    let b = parse(text.as_bytes(), "T1").expect("parses");
    assert_eq!(b.total_rows, 4);
    assert_eq!(b.other_tills, 1);
    assert_eq!(b.rows.len(), 3);
    assert_eq!(b.rows[0].kind, RowKind::Payment);
    assert_eq!(b.rows[0].amount, Fen(1234));
    assert_eq!(b.rows[1].kind, RowKind::Refund);
    assert_eq!(b.rows[1].refund_no.as_deref(), Some("R1"));
    assert_eq!(b.rows[1].amount, Fen(234));
    assert_eq!(b.rows[2].kind, RowKind::RevokeRefund);
    assert_eq!(b.rows[2].amount, Fen(500));
}

#[test]
fn columns_are_found_by_name_in_any_order_and_the_legacy_layout() {
    let text = "交易时间,商户订单号,交易状态,设备号,微信订单号,总金额\n`2026-11-22 10:00:00,`T1_A1_1,`SUCCESS,`T1,`4200001,`0.10\n总交易单数,总交易额\n`1,`0.10\n";
    let b = parse(text.as_bytes(), "T1").expect("legacy parses");
    assert_eq!(b.rows[0].amount, Fen(10));
    assert_eq!(b.rows[0].out_trade_no, "T1_A1_1");
}

#[test]
fn a_gb18030_bill_is_read() {
    let text = bill(
        &[row(
            "T1", "4200001", "T1_A1_1", "SUCCESS", "1.00", "", "0.00", "1.00",
        )],
        "`1,`1.00,`0.00,`0.00,`0.00,`1.00,`0.00",
    );
    let (bytes, _, _) = encoding_rs::GB18030.encode(&text);
    let b = parse(&bytes[..], "T1").expect("gb18030 parses");
    assert_eq!(b.rows.len(), 1);
}

#[test]
fn truncated_or_garbled_bills_are_refused() {
    let full = bill(
        &[row(
            "T1", "4200001", "T1_A1_1", "SUCCESS", "1.00", "", "0.00", "1.00",
        )],
        "`1,`1.00,`0.00,`0.00,`0.00,`1.00,`0.00",
    );
    let cut = &full[..full.find("总交易单数").expect("summary")];
    assert!(parse(cut.as_bytes(), "T1")
        .unwrap_err()
        .to_string()
        .contains("truncated"));
    let wrong_total = full.replace("`1,`1.00,`0.00", "`2,`1.00,`0.00");
    assert!(parse(wrong_total.as_bytes(), "T1").is_err());
    let garbled = full.replace("`1.00,`0.00,`,", "`1.0x,`0.00,`,");
    assert!(parse(garbled.as_bytes(), "T1").is_err());
    assert!(parse(&b"\x89PNG\r\n"[..], "T1").is_err());
    assert!(parse(&b""[..], "T1").is_err());
}

#[test]
fn a_bill_with_no_rows_is_empty_not_an_error() {
    let text = bill(&[], "`0,`0.00,`0.00,`0.00,`0.00,`0.00,`0.00");
    let b = parse(text.as_bytes(), "T1").expect("parses");
    assert!(b.rows.is_empty());
}
