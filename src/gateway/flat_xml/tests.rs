use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn requests_round_trip_including_awkward_values() {
    let p = map(&[
        ("appid", "wx2421b1c4370ec43b"),
        ("body", "咖啡 & <蛋糕> \"x\""),
        ("attach", "a]]>b]]>"),
        ("detail", "{\"goods\":[]}"),
        ("total_fee", "1"),
        ("spaces", "  padded  "),
    ]);
    let xml = to_xml(&p);
    assert!(xml.starts_with("<xml>") && xml.ends_with("</xml>"), "{xml}");
    assert!(xml.contains("<total_fee>1</total_fee>"), "{xml}");
    assert!(xml.contains("<body><![CDATA["), "{xml}");
    assert_eq!(parse(xml.as_bytes()), Ok(p));
}

#[test]
fn control_characters_are_dropped_from_requests() {
    let p = map(&[("body", "a\u{1}b\u{1b}c\nd")]);
    let parsed = parse(to_xml(&p).as_bytes()).expect("parses");
    assert_eq!(parsed["body"], "abc\nd");
}

#[test]
fn real_response_shapes_parse() {
    let body =
        "<?xml version=\"1.0\"?>\n<xml>\n  <return_code><![CDATA[SUCCESS]]></return_code>\n  \
                <return_msg><![CDATA[OK]]></return_msg>\n  <total_fee>1</total_fee>\n  \
                <err_code_des>a &amp; b &#x4e2d;</err_code_des>\n  <coupon_fee/>\n</xml>\n";
    let m = parse(body.as_bytes()).expect("parses");
    assert_eq!(m["return_code"], "SUCCESS");
    assert_eq!(m["total_fee"], "1");
    assert_eq!(m["err_code_des"], "a & b 中");
    assert_eq!(m["coupon_fee"], "");
    assert_eq!(m.len(), 5);
}

#[test]
fn hostile_documents_are_refused() {
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
               <xml><a>&x;</a></xml>";
    assert_eq!(parse(xxe.as_bytes()), Err(XmlError::Doctype));
    // An entity nobody defined is not expanded into anything.
    assert!(parse(b"<xml><a>&x;</a></xml>").is_err());
    let lol = format!(
        "<!DOCTYPE xml [<!ENTITY a \"{}\">]><xml><a>&a;</a></xml>",
        "x".repeat(10)
    );
    assert_eq!(parse(lol.as_bytes()), Err(XmlError::Doctype));

    let big = format!("<xml><a>{}</a></xml>", "x".repeat(MAX_BODY));
    assert_eq!(parse(big.as_bytes()), Err(XmlError::TooLarge));
    let many: String = (0..=MAX_FIELDS)
        .map(|i| format!("<f{i}>1</f{i}>"))
        .collect();
    assert_eq!(
        parse(format!("<xml>{many}</xml>").as_bytes()),
        Err(XmlError::TooManyFields)
    );
    assert!(matches!(
        parse(b"<xml><a>1</a><a>2</a></xml>"),
        Err(XmlError::Duplicate(_))
    ));
    assert!(matches!(
        parse(b"<xml><a><b>1</b></a></xml>"),
        Err(XmlError::Structure(_))
    ));
    assert!(matches!(
        parse(b"<html><a>1</a></html>"),
        Err(XmlError::Structure(_))
    ));
    assert!(parse(b"<xml><a>1</b></xml>").is_err());
    assert!(parse(b"<xml><a>1</a>").is_err());
    assert!(parse(b"<xml><a>1</a></xml><xml></xml>").is_err());
    assert!(parse(b"<xml>stray<a>1</a></xml>").is_err());
    assert_eq!(parse(b"<xml><a>\xff</a></xml>"), Err(XmlError::NotUtf8));
    assert!(parse(b"").is_err());
    assert!(parse(b"not xml at all").is_err());
}

proptest::proptest! {
    #[test]
    fn any_request_round_trips(
        p in proptest::collection::btree_map("[a-z_][a-z0-9_]{0,15}", "\\PC{0,40}", 0..20)
    ) {
        let parsed = parse(to_xml(&p).as_bytes());
        let cleaned: BTreeMap<String, String> = p
            .iter()
            .map(|(k, v)| (k.clone(), v.chars().filter(|c| is_xml_char(*c)).collect()))
            .collect();
        proptest::prop_assert_eq!(parsed, Ok(cleaned));
    }

    #[test]
    fn any_bytes_parse_or_fail_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = parse(&body);
    }
}
