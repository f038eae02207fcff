//! RSA for the channels that sign with it (SHA256withRSA, PKCS#1 v1.5):
//! key parsing, signing and verification, with `ring` only (no `rsa`
//! crate: RUSTSEC-2023-0071).
//!
//! Gateways' key tools print bare base64 (PKCS#8 for Java, PKCS#1 for other
//! languages), openssl writes PEM; merchants paste whatever they have, so
//! every common form is accepted. `ring` verifies with a PKCS#1
//! `RSAPublicKey`, so an SPKI public key is unwrapped by a small DER walk.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    KeyPair, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};

/// Signs `content` with `key` (SHA256withRSA); base64 without line breaks.
pub fn sign(key: &RsaKeyPair, content: &str) -> Result<String, String> {
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        content.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "RSA signing failed".to_string())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sig))
}

/// Verifies a base64 SHA256withRSA signature over `content` with a PKCS#1
/// public key. Whitespace inside the base64 is ignored.
pub fn verify(public_key_pkcs1: &[u8], content: &[u8], sign_b64: &str) -> bool {
    let compact: String = sign_b64.chars().filter(|c| !c.is_whitespace()).collect();
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(compact) else {
        return false;
    };
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key_pkcs1)
        .verify(content, &sig)
        .is_ok()
}

/// The rsaEncryption OID 1.2.840.113549.1.1.1, DER-encoded contents.
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Parses an RSA private key: PKCS#1 PEM (`RSA PRIVATE KEY`), PKCS#8 PEM
/// (`PRIVATE KEY`) or bare base64 of either DER form.
pub fn parse_private_key(text: &str) -> Result<RsaKeyPair, String> {
    let der = match pem_body(text)? {
        Some((label, der)) => match label.as_str() {
            "RSA PRIVATE KEY" | "PRIVATE KEY" => der,
            "ENCRYPTED PRIVATE KEY" => {
                return Err("the private key is encrypted; store it without a passphrase".into())
            }
            other => return Err(format!("expected a private key, found a PEM \"{other}\"")),
        },
        None => bare_base64(text)?,
    };
    RsaKeyPair::from_pkcs8(&der)
        .or_else(|e8| RsaKeyPair::from_der(&der).map_err(|e1| (e8, e1)))
        .map_err(|(e8, e1)| {
            format!("not a usable RSA private key (as PKCS#8: {e8}; as PKCS#1: {e1})")
        })
}

/// Parses an RSA public key: SPKI PEM (`PUBLIC KEY`), PKCS#1 PEM
/// (`RSA PUBLIC KEY`) or bare base64 of either. Returns the PKCS#1
/// `RSAPublicKey` DER that `ring` verifies with.
pub fn parse_public_key(text: &str) -> Result<Vec<u8>, String> {
    let der =
        match pem_body(text)? {
            Some((label, der)) => match label.as_str() {
                "PUBLIC KEY" | "RSA PUBLIC KEY" => der,
                "CERTIFICATE" => return Err(
                    "this is a certificate; give the Alipay public key itself (public-key mode)"
                        .into(),
                ),
                other => return Err(format!("expected a public key, found a PEM \"{other}\"")),
            },
            None => bare_base64(text)?,
        };
    rsa_public_key_der(&der)
}

/// The PKCS#1 public key of a key pair (what the simulator needs to verify
/// a demo client, and tests to pair keys).
pub fn public_key_of(key: &RsaKeyPair) -> Vec<u8> {
    key.public_key().as_ref().to_vec()
}

/// `Some((label, der))` for PEM text, `None` when there is no PEM armour.
fn pem_body(text: &str) -> Result<Option<(String, Vec<u8>)>, String> {
    let Some(begin) = text.find("-----BEGIN ") else {
        return Ok(None);
    };
    let after = &text[begin + "-----BEGIN ".len()..];
    let label_end = after.find("-----").ok_or("PEM BEGIN line is not closed")?;
    let label = after[..label_end].to_string();
    let body_and_rest = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body_and_rest
        .find(&end_marker)
        .ok_or_else(|| format!("PEM \"{label}\" has no END line"))?;
    let body = &body_and_rest[..end];
    if body.contains("Proc-Type:") || body.contains("DEK-Info:") {
        return Err("the private key is encrypted; store it without a passphrase".into());
    }
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("PEM \"{label}\" body is not base64: {e}"))?;
    Ok(Some((label, der)))
}

fn bare_base64(text: &str) -> Result<Vec<u8>, String> {
    let b64: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if b64.is_empty() {
        return Err("the key file is empty".into());
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("neither PEM nor base64: {e}"))
}

/// One DER element: (tag, contents, rest).
fn der_next(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "malformed DER in the public key".to_string();
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;

/// The RSA public key of a DER `SubjectPublicKeyInfo` (a certificate's),
/// as the PKCS#1 `RSAPublicKey` that `ring` verifies with.
pub fn public_key_from_spki(der: &[u8]) -> Result<Vec<u8>, String> {
    rsa_public_key_der(der)
}

/// SPKI → the RSAPublicKey inside; an RSAPublicKey is checked and returned.
fn rsa_public_key_der(der: &[u8]) -> Result<Vec<u8>, String> {
    let (tag, body, trailing) = der_next(der)?;
    if tag != SEQUENCE || !trailing.is_empty() {
        return Err("not a DER public key".into());
    }
    let (first_tag, first, rest) = der_next(body)?;
    let pkcs1 = match first_tag {
        // SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING }
        SEQUENCE => {
            let (oid_tag, oid, _params) = der_next(first)?;
            if oid_tag != OID || oid != RSA_ENCRYPTION_OID {
                return Err("the public key is not an RSA key".into());
            }
            let (bs_tag, bits, _) = der_next(rest)?;
            match bits.split_first() {
                Some((0, key)) if bs_tag == BIT_STRING => key.to_vec(),
                _ => return Err("malformed DER in the public key".into()),
            }
        }
        // Already an RSAPublicKey: SEQUENCE { INTEGER n, INTEGER e }
        INTEGER => der.to_vec(),
        _ => return Err("not a DER public key".into()),
    };
    check_rsa_public_key(&pkcs1)?;
    Ok(pkcs1)
}

/// ring verifies lazily; check the shape and size now so a bad key is a
/// config error at start, not an "unverifiable answer" at the first sale.
fn check_rsa_public_key(pkcs1: &[u8]) -> Result<(), String> {
    let (tag, body, trailing) = der_next(pkcs1)?;
    if tag != SEQUENCE || !trailing.is_empty() {
        return Err("not an RSA public key".into());
    }
    let (n_tag, n, rest) = der_next(body)?;
    let (e_tag, e, rest) = der_next(rest)?;
    if n_tag != INTEGER || e_tag != INTEGER || !rest.is_empty() || e.is_empty() {
        return Err("not an RSA public key".into());
    }
    let n = match n.split_first() {
        Some((0, tail)) => tail,
        _ => n,
    };
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) {
        return Err(format!(
            "the RSA public key has {bits} bits; RSA2 needs 2048 to 8192"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gateway::alipay::fixture;

    #[test]
    fn every_private_key_form_gives_the_same_key() {
        let forms = [
            "demo_app_private_pkcs1.pem",
            "demo_app_private_pkcs8.pem",
            "demo_app_private_pkcs8.b64",
            "demo_app_private_pkcs1.b64",
        ];
        let publics: Vec<Vec<u8>> = forms
            .iter()
            .map(|f| match parse_private_key(&fixture(f)) {
                Ok(k) => public_key_of(&k),
                Err(e) => panic!("{f}: {e}"),
            })
            .collect();
        assert!(publics.windows(2).all(|w| w[0] == w[1]));
        let spki = parse_public_key(&fixture("demo_app_public_spki.pem"));
        let pkcs1 = parse_public_key(&fixture("demo_app_public_pkcs1.pem"));
        assert_eq!(spki.as_ref(), Ok(&publics[0]));
        assert_eq!(pkcs1.as_ref(), Ok(&publics[0]));
    }

    #[test]
    fn bare_base64_public_key_is_accepted() {
        let pem = parse_public_key(&fixture("sim_public_spki.pem"));
        assert!(pem.is_ok());
        assert_eq!(parse_public_key(&fixture("sim_public_spki.b64")), pem);
    }

    #[test]
    fn garbage_and_wrong_kinds_are_refused_with_a_reason() {
        assert!(parse_private_key("").is_err());
        assert!(parse_private_key("not a key at all!").is_err());
        assert!(parse_private_key(&fixture("demo_app_public_spki.pem"))
            .is_err_and(|e| e.contains("expected a private key")));
        assert!(parse_public_key(&fixture("demo_app_private_pkcs8.pem"))
            .is_err_and(|e| e.contains("expected a public key")));
        assert!(parse_public_key("MIIBIjAN").is_err());
        // A private key's base64 is not a public key.
        assert!(parse_public_key(&fixture("demo_app_private_pkcs1.b64")).is_err());
    }
}
