//! Finds the raw text of a top-level member's value in a JSON object.
//!
//! Alipay signs the exact bytes of `"<method>_response":{…}` as they appear
//! in the body, so the value must be cut out, not re-serialised (key order,
//! escapes and number forms would change). The official Java SDK cuts with
//! `indexOf`, python-alipay-sdk by counting braces; both break when a string
//! value holds `{`, `}` or `"sign"`. This scanner follows strings and
//! escapes, so only real structure counts.

/// The top-level members of a JSON object: (decoded key, raw value text),
/// in body order. `None` if `body` is not one well-formed-looking object.
pub fn top_level_members(body: &str) -> Option<Vec<(String, &str)>> {
    let b = body.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(out);
    }
    loop {
        let key_start = i;
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i = skip_string(b, i)?;
        let key: String = serde_json::from_str(&body[key_start..i]).ok()?;
        i = skip_ws(b, i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let value_start = i;
        i = skip_value(b, i)?;
        out.push((key, &body[value_start..i]));
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    (skip_ws(b, i + 1) == b.len()).then_some(out)
}

/// The raw value of the first top-level member named `key`.
pub fn member_raw<'a>(members: &[(String, &'a str)], key: &str) -> Option<&'a str> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `b[i]` is the opening quote; returns the index after the closing one.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Skips one value (object, array, string or scalar); the index after it.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let start = i;
            while let Some(c) = b.get(i) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_exact_raw_text_with_tricky_strings() {
        let body = r#"{ "alipay_trade_pay_response" : {"code":"10000","msg":"a } \" { ,\"sign\":\"x","n":{"l":[1,{"z":"]"}]}, "t":1.50} ,"sign":"abc\/d=" }"#;
        let m = top_level_members(body).expect("parses");
        assert_eq!(
            member_raw(&m, "alipay_trade_pay_response"),
            Some(
                r#"{"code":"10000","msg":"a } \" { ,\"sign\":\"x","n":{"l":[1,{"z":"]"}]}, "t":1.50}"#
            )
        );
        assert_eq!(member_raw(&m, "sign"), Some(r#""abc\/d=""#));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn escaped_keys_decode_and_garbage_is_refused() {
        let m = top_level_members(r#"{"a\u0062":1,"c":null}"#).expect("parses");
        assert_eq!(member_raw(&m, "ab"), Some("1"));
        assert_eq!(member_raw(&m, "c"), Some("null"));
        assert_eq!(top_level_members("{}").map(|m| m.len()), Some(0));
        for bad in [
            "",
            "[]",
            r#"{"a":1"#,
            r#"{"a":1}x"#,
            r#"{"a":"unterminated}"#,
            r#"{"a":{"b":1}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            "<html>502</html>",
        ] {
            assert!(top_level_members(bad).is_none(), "{bad:?}");
        }
    }
}
