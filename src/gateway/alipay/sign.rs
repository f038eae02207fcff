//! RSA2 (SHA256withRSA, PKCS#1 v1.5) request signing and response
//! verification (gateway-facts.md §A2, §A3).


/// The string OpenAPI signs: every non-empty parameter except `sign`,
/// sorted by key (ASCII), as `k=v` joined by `&`, values raw (not
/// URL-encoded). `sign_type` stays in: only the old mapi gateway dropped it.
pub fn content_to_sign<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| *k != "sign" && !v.is_empty())
        .collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

pub use crate::gateway::rsa::{sign, verify};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::rsa::{parse_private_key, parse_public_key, public_key_of};

    use crate::gateway::alipay::fixture;

    #[test]
    fn content_is_sorted_raw_and_skips_sign_and_empty_values() {
        let params = [
            ("timestamp", "2014-07-24 03:07:50"),
            ("sign", "XXX"),
            ("app_id", "2014072300007148"),
            ("notify_url", ""),
            ("biz_content", r#"{"subject":"a&b=c 中"}"#),
            ("sign_type", "RSA2"),
            ("method", "alipay.trade.pay"),
        ];
        assert_eq!(
            content_to_sign(params),
            "app_id=2014072300007148&biz_content={\"subject\":\"a&b=c 中\"}\
             &method=alipay.trade.pay&sign_type=RSA2&timestamp=2014-07-24 03:07:50"
        );
    }

    #[test]
    fn sign_verify_round_trip_with_every_key_form() {
        let public = parse_public_key(&fixture("demo_app_public_spki.pem")).expect("app key");
        for form in [
            "demo_app_private_pkcs1.pem",
            "demo_app_private_pkcs8.pem",
            "demo_app_private_pkcs8.b64",
            "demo_app_private_pkcs1.b64",
        ] {
            let key = parse_private_key(&fixture(form)).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(public_key_of(&key), public);
            let content = "app_id=1&biz_content={\"a\":\"中文\"}&sign_type=RSA2";
            let sig = sign(&key, content).expect("signs");
            assert_eq!(sig.len(), 344, "RSA2048 signatures are 344 base64 chars");
            assert!(verify(&public, content.as_bytes(), &sig), "{form}");
            assert!(!verify(&public, b"app_id=2", &sig));
        }
        let other = parse_public_key(&fixture("sim_public_spki.pem")).expect("sim key");
        let key = parse_private_key(&fixture("demo_app_private_pkcs1.pem")).expect("app key");
        let sig = sign(&key, "x").expect("signs");
        assert!(!verify(&other, b"x", &sig), "wrong public key must fail");
        assert!(!verify(&public, b"x", "not base64!"));
    }

    #[test]
    fn ring_verifies_what_openssl_signed() {
        let public = parse_public_key(&fixture("sim_public_spki.pem")).expect("sim key");
        let content = fixture("openssl_signed_content.txt");
        let sig = fixture("openssl_signed_content.sig");
        assert!(verify(&public, content.as_bytes(), &sig));
        let mut changed = content.into_bytes();
        changed[3] ^= 1;
        assert!(!verify(&public, &changed, &sig));
    }
}
