//! The simulator's own WeChat Pay v2 wire format: the flat `<xml>` document
//! and the v2 signature, written apart from the client's (`gateway/wechat/`)
//! so that a mistake in one cannot pass because the other makes it too.
//! Both are checked against WeChat's own example (gateway-facts.md §W2).

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// A request's or an answer's fields, by name.
pub type Fields = BTreeMap<String, String>;

/// The signature algorithms of API v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    Md5,
    HmacSha256,
}

impl Sign {
    /// A request's `sign_type`: absent means MD5, WeChat's default.
    pub fn of_request(value: Option<&str>) -> Option<Sign> {
        match value {
            None | Some("MD5") => Some(Sign::Md5),
            Some("HMAC-SHA256") => Some(Sign::HmacSha256),
            Some(_) => None,
        }
    }
}

/// The string WeChat signs: the non-empty fields but `sign`, in byte order
/// of their names, as `k=v` joined by `&`, then `&key=` and the API key.
fn string_to_sign(fields: &Fields, key: &str) -> String {
    // A BTreeMap of Strings iterates in byte order of the names already.
    let mut s = String::new();
    for (k, v) in fields {
        if k == "sign" || v.is_empty() {
            continue;
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('&');
    }
    s.push_str("key=");
    s.push_str(key);
    s
}

fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The `sign` of `fields` under `key`.
pub fn sign(fields: &Fields, key: &str, how: Sign) -> String {
    let text = string_to_sign(fields, key);
    match how {
        Sign::Md5 => upper_hex(&Md5::digest(text.as_bytes())),
        Sign::HmacSha256 => {
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
            upper_hex(ring::hmac::sign(&k, text.as_bytes()).as_ref())
        }
    }
}

/// Does the request's `sign` match? Compared without regard to case, as
/// WeChat does, and in constant time.
pub fn verify(fields: &Fields, key: &str, how: Sign) -> bool {
    let Some(given) = fields.get("sign") else {
        return false;
    };
    let want = sign(fields, key, how);
    let given = given.to_ascii_uppercase();
    given.len() == want.len()
        && given
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A fresh `nonce_str`: 32 hex characters.
pub fn nonce() -> String {
    let mut b = [0u8; 16];
    // An all-zero nonce if the system's randomness fails: it only has to
    // vary in practice, it protects nothing here.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Why a request body is not a WeChat document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotXml(pub &'static str);

/// The largest request the simulator reads.
const MAX_BODY: usize = 64 * 1024;

/// Parses `<xml><name>value</name>…</xml>`, each value plain text (with
/// the five XML entities) or one CDATA section. Anything else — a DOCTYPE,
/// nested elements, attributes, a second root — is refused, as a gateway
/// that never expands entities would.
pub fn parse(body: &[u8]) -> Result<Fields, NotXml> {
    if body.len() > MAX_BODY {
        return Err(NotXml("too large"));
    }
    let text = std::str::from_utf8(body).map_err(|_| NotXml("not UTF-8"))?;
    let mut rest = text.trim();
    if let Some(decl) = rest.strip_prefix("<?xml") {
        let end = decl.find("?>").ok_or(NotXml("open declaration"))?;
        rest = decl[end + 2..].trim_start();
    }
    let mut rest = rest
        .strip_prefix("<xml>")
        .ok_or(NotXml("no <xml> root"))?
        .trim_start();
    let mut fields = Fields::new();
    loop {
        if let Some(after) = rest.strip_prefix("</xml>") {
            if !after.trim().is_empty() {
                return Err(NotXml("text after the root"));
            }
            return Ok(fields);
        }
        let open = rest
            .strip_prefix('<')
            .ok_or(NotXml("text between fields"))?;
        let end = open.find('>').ok_or(NotXml("open tag"))?;
        let name = &open[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(NotXml("a tag that is not a plain field name"));
        }
        let body = &open[end + 1..];
        let close = format!("</{name}>");
        let (value, after) = if body.starts_with("<![CDATA[") {
            // One or more CDATA sections, and nothing else.
            let mut value = String::new();
            let mut b = body;
            while let Some(cdata) = b.strip_prefix("<![CDATA[") {
                let stop = cdata.find("]]>").ok_or(NotXml("open CDATA"))?;
                value.push_str(&cdata[..stop]);
                b = &cdata[stop + 3..];
            }
            let after = b
                .strip_prefix(close.as_str())
                .ok_or(NotXml("CDATA not alone in its field"))?;
            (value, after)
        } else {
            let stop = body.find(close.as_str()).ok_or(NotXml("unclosed field"))?;
            let raw = &body[..stop];
            if raw.contains('<') {
                return Err(NotXml("nested element"));
            }
            (unescape(raw)?, &body[stop + close.len()..])
        };
        if fields.insert(name.to_string(), value).is_some() {
            return Err(NotXml("a field twice"));
        }
        rest = after.trim_start();
    }
}

fn unescape(raw: &str) -> Result<String, NotXml> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (ch, len) = [
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&amp;", '&'),
            ("&quot;", '"'),
            ("&apos;", '\''),
        ]
        .iter()
        .find(|(e, _)| tail.starts_with(e))
        .map(|(e, c)| (*c, e.len()))
        .ok_or(NotXml("an entity WeChat does not send"))?;
        out.push(ch);
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// An answer as WeChat writes it: every value in CDATA.
pub fn to_xml(fields: &Fields) -> String {
    let mut s = String::from("<xml>");
    for (k, v) in fields {
        // "]]>" cannot sit inside one CDATA section: split it across two.
        let v = v.replace("]]>", "]]]]><![CDATA[>");
        s.push_str(&format!("<{k}><![CDATA[{v}]]></{k}>"));
    }
    s.push_str("</xml>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// WeChat's own example from its signing page (gateway-facts.md §W2).
    #[test]
    fn the_official_example_signs_to_the_official_signatures() {
        let f = fields(&[
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ]);
        let key = "192006250b4c09247ec02edce69f6a2d";
        assert_eq!(
            string_to_sign(&f, key),
            "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d"
        );
        assert_eq!(sign(&f, key, Sign::Md5), "9A0A8659F005D6984697E2CA0A9CF3B7");
        assert_eq!(
            sign(&f, key, Sign::HmacSha256),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
        let mut signed = f.clone();
        signed.insert("sign".into(), "9a0a8659f005d6984697e2ca0a9cf3b7".into());
        assert!(verify(&signed, key, Sign::Md5), "case does not matter");
        signed.insert("body".into(), "test2".into());
        assert!(!verify(&signed, key, Sign::Md5));
        // Empty values and `sign` itself stay out of the string.
        let mut with_empty = f.clone();
        with_empty.insert("attach".into(), String::new());
        assert_eq!(
            sign(&with_empty, key, Sign::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
    }

    #[test]
    fn documents_parse_as_wechat_sends_and_refuses_them() {
        let body = "<xml><return_code><![CDATA[SUCCESS]]></return_code>\n<total_fee>1</total_fee><body>a &amp; b</body></xml>";
        let f = parse(body.as_bytes()).expect("parses");
        assert_eq!(f["return_code"], "SUCCESS");
        assert_eq!(f["total_fee"], "1");
        assert_eq!(f["body"], "a & b");
        for bad in [
            "<!DOCTYPE x [<!ENTITY e \"x\">]><xml><a>&e;</a></xml>",
            "<xml><a><b>1</b></a></xml>",
            "<xml><a x=\"1\">1</a></xml>",
            "<xml><a>1</a><a>2</a></xml>",
            "<xml><a>1</a></xml><xml></xml>",
            "<xml><a>1</a>",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let round = fields(&[("a", "x]]>y"), ("b", "<&>")]);
        assert_eq!(parse(to_xml(&round).as_bytes()).expect("parses"), round);
    }
}
