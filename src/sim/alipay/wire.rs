//! The simulator's own Alipay wire format, written apart from the client's
//! (`gateway/alipay/`) so that the two cannot agree on a mistake: the form
//! the request comes in, the string its signature covers (gateway-facts.md
//! §A2), RSA2 over it, and the answer's JSON as the gateway writes it — keys
//! in the gateway's own order, `/` escaped as `\/` — signed over exactly
//! that text (§A3). Only the decoding of the PEM key files is shared.

use base64::Engine as _;
use ring::signature::{
    RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use serde_json::Value;

/// Decodes `application/x-www-form-urlencoded` (a POST body or a query
/// string). `None` when a `%` escape is broken or the text is not UTF-8.
pub fn form_decode(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((unescape(k)?, unescape(v)?));
    }
    Some(out)
}

fn unescape(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        bytes.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = char::from(it.next()?).to_digit(16)?;
                let lo = char::from(it.next()?).to_digit(16)?;
                u8::try_from(hi * 16 + lo).ok()?
            }
            b => b,
        });
    }
    String::from_utf8(bytes).ok()
}

/// The string a request's `sign` covers: every parameter but `sign` with a
/// value, sorted by name, `k=v` joined by `&`, values as sent (not
/// URL-encoded). `sign_type` is in it: only the old mapi gateway left it out.
pub fn signed_content(params: &[(String, String)]) -> String {
    let mut kept: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k != "sign" && !v.is_empty())
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks a base64 SHA256withRSA signature with a PKCS#1 public key.
pub fn verify(public_key_pkcs1: &[u8], content: &str, sign_b64: &str) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sign_b64.trim()) else {
        return false;
    };
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key_pkcs1)
        .verify(content.as_bytes(), &sig)
        .is_ok()
}

/// Signs `content` with SHA256withRSA; base64.
pub fn sign(key: &RsaKeyPair, content: &str) -> Option<String> {
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        content.as_bytes(),
        &mut sig,
    )
    .ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(sig))
}

/// An answer node: its fields in the order the gateway writes them
/// (`code`, `msg`, `sub_code`, `sub_msg`, then the method's own).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node(Vec<(String, Value)>);

impl Node {
    pub fn new() -> Node {
        Node::default()
    }

    /// Sets `k` (in place when it is there already, else at the end).
    pub fn insert(&mut self, k: impl Into<String>, v: impl Into<Value>) {
        let (k, v) = (k.into(), v.into());
        match self.0.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => self.0.push((k, v)),
        }
    }

    pub fn get(&self, k: &str) -> Option<&Value> {
        self.0.iter().find(|(name, _)| name == k).map(|(_, v)| v)
    }

    /// The node's JSON text as the gateway writes it: its own key order,
    /// and `/` escaped as `\/` (which JSON allows, and which a client that
    /// re-serialises before verifying gets wrong).
    pub fn text(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
            .collect();
        format!("{{{}}}", fields.join(",")).replace('/', "\\/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The shape of Alipay's own example of a signed request (§A2):
    /// sorted by name, raw values, `sign_type` in, `sign` and empty ones out.
    #[test]
    fn the_signed_string_is_built_as_alipay_documents() {
        let p = pairs(&[
            ("timestamp", "2014-07-24 03:07:50"),
            ("method", "alipay.trade.pay"),
            ("app_id", "2014072300007148"),
            ("sign_type", "RSA2"),
            ("sign", "xxx"),
            ("notify_url", ""),
            ("charset", "utf-8"),
            ("version", "1.0"),
            (
                "biz_content",
                r#"{"out_trade_no":"T1_A1_1","total_amount":"0.01"}"#,
            ),
        ]);
        assert_eq!(
            signed_content(&p),
            r#"app_id=2014072300007148&biz_content={"out_trade_no":"T1_A1_1","total_amount":"0.01"}&charset=utf-8&method=alipay.trade.pay&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0"#
        );
    }

    #[test]
    fn forms_decode_escapes_and_refuse_broken_ones() {
        let p = form_decode("a=1+2&b=%E4%B8%AD%2F&c").expect("decodes");
        assert_eq!(p, pairs(&[("a", "1 2"), ("b", "中/"), ("c", "")]));
        assert!(form_decode("a=%E4%B8").is_none(), "cut UTF-8");
        assert!(form_decode("a=%G1").is_none());
        assert!(form_decode("a=%4").is_none());
    }

    #[test]
    fn a_node_keeps_the_gateways_order_and_escapes_slashes() {
        let mut n = Node::new();
        n.insert("code", "10000");
        n.insert("msg", "Success");
        n.insert("bill_download_url", "http://x/y");
        n.insert("code", "40004");
        let text = n.text();
        assert_eq!(
            text,
            r#"{"code":"40004","msg":"Success","bill_download_url":"http:\/\/x\/y"}"#
        );
        let back: Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(back["bill_download_url"], "http://x/y");
    }
}
