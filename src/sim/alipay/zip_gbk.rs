//! A minimal zip writer whose entry names are raw GBK bytes without the
//! UTF-8 flag, as Alipay's bill zips are (gateway-facts.md §A8). The `zip` crate
//! only writes UTF-8 names, so the container is written here. Entries are
//! deflated (method 8), as Alipay's are: a reader that only copies stored
//! entries fails here as it would on the real bill.

use std::io::Write;

use chrono::{Datelike, NaiveDateTime, Timelike};

/// `files`: (name bytes, content bytes). `modified`: the entries' time.
pub fn write(files: &[(Vec<u8>, Vec<u8>)], modified: NaiveDateTime) -> Vec<u8> {
    let (dos_time, dos_date) = dos_datetime(modified);
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let packed = deflate(data);
        let packed_size = packed.len() as u32;
        let name_len = name.len() as u16;
        // Local file header: version 2.0, no flags, method 8 (deflate).
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        for v in [20u16, 0, 8, dos_time, dos_date] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, packed_size, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&packed);
        // Central directory record.
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [20u16, 20, 0, 8, dos_time, dos_date] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, packed_size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let central_offset = out.len() as u32;
    let central_size = central.len() as u32;
    out.extend_from_slice(&central);
    let count = files.len() as u16;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, count, count] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Raw deflate, as zip entries hold it. Writing to memory cannot fail.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn dos_datetime(t: NaiveDateTime) -> (u16, u16) {
    let time = (t.hour() << 11) | (t.minute() << 5) | (t.second() / 2);
    let year = (t.year() - 1980).clamp(0, 127) as u32;
    let date = (year << 9) | (t.month() << 5) | t.day();
    (time as u16, date as u16)
}

/// CRC-32 (IEEE), as zip uses.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
