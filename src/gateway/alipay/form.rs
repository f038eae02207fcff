//! `application/x-www-form-urlencoded` both ways: the client's POST body,
//! and reading one back in tests. The simulator decodes with code of its
//! own (`sim/alipay/wire.rs`).

/// Encodes pairs as a form body: unreserved bytes kept, space as `+`,
/// everything else `%XX` of its UTF-8 bytes.
pub fn encode<'a, I>(pairs: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = String::new();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, k);
        out.push('=');
        encode_into(&mut out, v);
    }
    out
}

fn encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

/// Decodes a form body or query string. `None` if a `%` escape is broken
/// or the result is not UTF-8 (the request said charset=utf-8).
pub fn decode(s: &str) -> Option<Vec<(String, String)>> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode_one(k)?, decode_one(v)?))
        })
        .collect()
}

fn decode_one(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_json_chinese_and_symbols() {
        let pairs = [
            ("biz_content", r#"{"subject":"咖啡 & 茶","x":"a+b=c%"}"#),
            ("timestamp", "2024-01-02 03:04:05"),
            ("sign", "ab/c+d=="),
        ];
        let body = encode(pairs);
        assert!(!body.contains(' ') && !body.contains('"'), "{body}");
        let back = decode(&body).expect("decodes");
        let want: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(back, want);
        assert!(decode("a=%zz").is_none());
        assert!(decode("a=%e4%b8").is_none(), "cut UTF-8");
        assert_eq!(
            decode("a=1&&b"),
            Some(vec![("a".into(), "1".into()), ("b".into(), String::new())])
        );
    }
}
