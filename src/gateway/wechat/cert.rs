//! Just enough DER to read what tillpay needs of a certificate without an
//! X.509 library: its expiry (`notAfter`) for `tillpay doctor`, its serial
//! number and its public key (API v3 platform certificates).

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};

fn tlv(der: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "not DER".to_string();
    let (&tag, rest) = der.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err("truncated DER".into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The parts of a certificate tillpay reads.
struct Parts<'a> {
    serial: &'a [u8],
    validity: &'a [u8],
    /// The whole `subjectPublicKeyInfo`, tag and length included.
    spki: &'a [u8],
}

fn der_of(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| format!("bad base64: {e}"))
}

fn parts(der: &[u8]) -> Result<Parts<'_>, String> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r; // explicit version
    }
    let (_, serial, r) = tlv(rest)?;
    let r = tlv(r)?.2; // signature algorithm
    let r = tlv(r)?.2; // issuer
    let (_, validity, r) = tlv(r)?;
    let r = tlv(r)?.2; // subject
    let after = tlv(r)?.2;
    let spki = &r[..r.len() - after.len()];
    Ok(Parts {
        serial,
        validity,
        spki,
    })
}

/// The first certificate's serial number in PEM text, as upper-case hex
/// the way WeChat Pay prints it (`Wechatpay-Serial`, the merchant portal).
pub fn serial_hex(pem: &str) -> Result<String, String> {
    let der = der_of(pem)?;
    let serial = parts(&der)?.serial;
    // A DER INTEGER carries a leading zero byte when the top bit is set.
    let serial = match serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        s => s,
    };
    Ok(serial.iter().map(|b| format!("{b:02X}")).collect())
}

/// The first certificate's RSA public key (PKCS#1 DER, as `ring` verifies
/// with).
pub fn public_key(pem: &str) -> Result<Vec<u8>, String> {
    let der = der_of(pem)?;
    crate::gateway::rsa::public_key_from_spki(parts(&der)?.spki)
}

/// The first certificate's `notAfter` in PEM text.
pub fn not_after(pem: &str) -> Result<DateTime<Utc>, String> {
    let der = der_of(pem)?;
    let validity = parts(&der)?.validity;
    let (_, _, after) = tlv(validity)?;
    let (tag, time, _) = tlv(after)?;
    let text = std::str::from_utf8(time).map_err(|_| "bad time".to_string())?;
    let text = text.trim_end_matches('Z');
    let full = match tag {
        // UTCTime: YY >= 50 means 19YY (RFC 5280).
        0x17 if text.len() == 12 => {
            let yy: u32 = text[..2].parse().map_err(|_| "bad time".to_string())?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        0x18 if text.len() == 14 => text.to_string(),
        _ => return Err("unexpected time format".into()),
    };
    NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S")
        .map(|t| t.and_utc())
        .map_err(|e| format!("bad time: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-signed test certificate (CN=tillpay-test), valid 2024-01-01 to 2034-01-01.
    fn cert_der(not_after: &[u8], tag: u8) -> Vec<u8> {
        let time = |t: &[u8], tag: u8| [&[tag, t.len() as u8][..], t].concat();
        let seq = |parts: &[Vec<u8>], tag: u8| {
            let body: Vec<u8> = parts.concat();
            [&[tag, body.len() as u8][..], &body].concat()
        };
        let validity = seq(&[time(b"240101000000Z", 0x17), time(not_after, tag)], 0x30);
        let tbs = seq(
            &[
                seq(&[vec![0x02, 0x01, 0x02]], 0xa0),
                vec![0x02, 0x01, 0x07],
                seq(&[vec![0x06, 0x01, 0x2a]], 0x30),
                seq(&[], 0x30),
                validity,
                seq(&[], 0x30),
                seq(&[], 0x30),
            ],
            0x30,
        );
        seq(&[tbs], 0x30)
    }

    fn pem(der: &[u8]) -> String {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    }

    #[test]
    fn reads_utc_and_generalized_times() {
        let t = not_after(&pem(&cert_der(b"340101000000Z", 0x17))).expect("parses");
        assert_eq!(t.to_rfc3339(), "2034-01-01T00:00:00+00:00");
        let t = not_after(&pem(&cert_der(b"20991231235959Z", 0x18))).expect("parses");
        assert_eq!(t.to_rfc3339(), "2099-12-31T23:59:59+00:00");
        assert!(not_after("no pem here").is_err());
        assert!(not_after(&pem(&[0x30, 0x05, 0x01])).is_err());
    }
}
