//! Signatures of the `unified.trade.*` protocol (SwiftPass's, as banks and
//! UnionPay's barcode front-end expose it; docs/gateway-facts.md §Q2).
//!
//! The signed string is every field but `sign`, empty values left out,
//! sorted by key in byte order, as `k=v&…` with raw values; `sign_type` is
//! one of the fields and is signed too.
//! - `MD5`: upper-case hex MD5 of the string followed by `&key=KEY`.
//! - `RSA_1_256`: SHA256withRSA (PKCS#1 v1.5) of the string alone, base64,
//!   with the merchant's private key; answers verify with the acquirer's
//!   ("platform") public key.
//!
//! Which one an acquirer takes differs (UnionPay's front-end: MD5 only; some
//! banks: RSA only), so it is the merchant's setting.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use ring::signature::RsaKeyPair;

use crate::gateway::rsa;

pub type Fields = BTreeMap<String, String>;

/// How requests are signed and answers verified.
pub enum Signer {
    Md5 {
        key: String,
    },
    Rsa {
        merchant_key: Box<RsaKeyPair>,
        /// The acquirer's public key (PKCS#1 DER).
        platform_key: Vec<u8>,
    },
}

impl Signer {
    /// The `sign_type` value this signer sends.
    pub fn sign_type(&self) -> &'static str {
        match self {
            Signer::Md5 { .. } => "MD5",
            Signer::Rsa { .. } => "RSA_1_256",
        }
    }

    /// The `sign` of `fields` (which must already hold `sign_type`).
    pub fn sign(&self, fields: &Fields) -> Result<String, String> {
        let text = signed_string(fields);
        match self {
            Signer::Md5 { key } => Ok(md5_upper(&format!("{text}&key={key}"))),
            Signer::Rsa { merchant_key, .. } => rsa::sign(merchant_key, &text),
        }
    }

    /// Does the answer's `sign` verify? An answer without one does not.
    pub fn verify(&self, fields: &Fields) -> bool {
        let Some(given) = fields.get("sign").filter(|s| !s.is_empty()) else {
            return false;
        };
        let text = signed_string(fields);
        match self {
            Signer::Md5 { key } => {
                let want = md5_upper(&format!("{text}&key={key}"));
                crate::gateway::constant_time_eq(
                    given.to_ascii_uppercase().as_bytes(),
                    want.as_bytes(),
                )
            }
            Signer::Rsa { platform_key, .. } => rsa::verify(platform_key, text.as_bytes(), given),
        }
    }
}

/// The string both signatures cover.
pub fn signed_string(fields: &Fields) -> String {
    fields
        .iter()
        .filter(|(k, v)| k.as_str() != "sign" && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn md5_upper(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
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

    const KEY: &str = "9d101c97133837e13dde2d32a5054abb";

    #[test]
    fn md5_covers_the_sorted_nonempty_fields_and_the_key_in_upper_case() {
        let f = fields(&[
            ("service", "unified.trade.micropay"),
            ("sign_type", "MD5"),
            ("mch_id", "7551000001"),
            ("out_trade_no", "T1_A1_1"),
            ("body", "咖啡"),
            ("total_fee", "1234"),
            ("auth_code", "134567890123456789"),
            ("nonce_str", "abc"),
            ("attach", ""),
        ]);
        assert_eq!(
            signed_string(&f),
            "auth_code=134567890123456789&body=咖啡&mch_id=7551000001&nonce_str=abc&\
             out_trade_no=T1_A1_1&service=unified.trade.micropay&sign_type=MD5&total_fee=1234"
        );
        // Python's hashlib over the same string, with `&key=KEY` appended.
        let signer = Signer::Md5 { key: KEY.into() };
        assert_eq!(
            signer.sign(&f).as_deref(),
            Ok("7C77873BF0A987532D11B2DE6BDD1535")
        );
    }

    #[test]
    fn an_answer_verifies_only_with_its_own_fields_and_the_right_key() {
        let signer = Signer::Md5 { key: KEY.into() };
        let mut f = fields(&[("status", "0"), ("result_code", "0"), ("sign_type", "MD5")]);
        let s = signer.sign(&f).expect("signs");
        f.insert("sign".into(), s.to_ascii_lowercase());
        assert!(signer.verify(&f), "case does not matter");
        let mut changed = f.clone();
        changed.insert("result_code".into(), "1".into());
        assert!(!signer.verify(&changed));
        let other = Signer::Md5 {
            key: "x".repeat(32),
        };
        assert!(!other.verify(&f));
        f.remove("sign");
        assert!(!signer.verify(&f), "no sign is not verified");
    }

    #[test]
    fn rsa_signs_with_the_merchant_key_and_verifies_with_the_platforms() {
        use crate::sim::wechat::v3::keys;
        let merchant = rsa::parse_private_key(keys::MERCHANT_PRIVATE_KEY_PEM).expect("key");
        let platform = rsa::parse_private_key(keys::WECHATPAY_PRIVATE_KEY_PEM).expect("key");
        let ours = Signer::Rsa {
            merchant_key: Box::new(
                rsa::parse_private_key(keys::MERCHANT_PRIVATE_KEY_PEM).expect("key"),
            ),
            platform_key: rsa::public_key_of(&platform),
        };
        let mut f = fields(&[("status", "0"), ("sign_type", "RSA_1_256")]);
        // An answer signed by the platform verifies…
        let s = rsa::sign(&platform, &signed_string(&f)).expect("signs");
        f.insert("sign".into(), s);
        assert!(ours.verify(&f));
        // …one signed with the merchant's own key does not.
        let s = rsa::sign(&merchant, &signed_string(&f)).expect("signs");
        f.insert("sign".into(), s);
        assert!(!ours.verify(&f));
    }
}
