//! The flat `<xml><k>v</k>…</xml>` documents of WeChat Pay v2 and of the
//! acquirers' `unified.trade.*` gateways: one level of fields, values in
//! CDATA where they need it.
//!
//! Responses come from the network, so parsing is strict and bounded: a size
//! and field cap, no DTD (hence no entity definitions: only the five
//! predefined entities and character references are understood), no nested
//! elements, no duplicate fields. Anything else is an error, which the client
//! treats as an unknown answer (payment-rules.md §4).

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;

/// Largest response body accepted (a real answer is under 2 KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// Most fields accepted in one document (a refund query with ten refunds
/// has about 60).
pub const MAX_FIELDS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("body larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("not UTF-8")]
    NotUtf8,
    #[error("DTDs are not accepted")]
    Doctype,
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("unexpected structure: {0}")]
    Structure(String),
    #[error("field {0:?} appears twice")]
    Duplicate(String),
}

/// Builds a request body. Values go in CDATA unless they are plain
/// (letters, digits, `_-.`), and a `]]>` inside a value is split across two
/// CDATA sections. Characters XML 1.0 cannot carry at all (most control
/// characters) are dropped: they could only come from a POS subject.
pub fn to_xml(params: &BTreeMap<String, String>) -> String {
    let mut out = String::from("<xml>");
    for (k, v) in params {
        out.push('<');
        out.push_str(k);
        out.push('>');
        let v: String = v.chars().filter(|c| is_xml_char(*c)).collect();
        if v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            out.push_str(&v);
        } else {
            out.push_str("<![CDATA[");
            out.push_str(&v.replace("]]>", "]]]]><![CDATA[>"));
            out.push_str("]]>");
        }
        out.push_str("</");
        out.push_str(k);
        out.push('>');
    }
    out.push_str("</xml>");
    out
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// Parses a response into its fields. The root element must be `<xml>`
/// and each child a leaf whose text (CDATA and escaped text, concatenated)
/// is the value; whitespace between children is ignored, whitespace inside
/// a value is kept (it is signed as sent).
// One function on purpose: a single-pass tokenizer whose caps (size, depth, fields) are easiest to check when read top to bottom.
pub fn parse(body: &[u8]) -> Result<BTreeMap<String, String>, XmlError> {
    if body.len() > MAX_BODY {
        return Err(XmlError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    let cfg = reader.config_mut();
    cfg.trim_text(false);
    cfg.check_end_names = true;
    cfg.expand_empty_elements = false;

    let mut fields = BTreeMap::new();
    let mut in_root = false;
    let mut root_done = false;
    // The field being read, and its value so far.
    let mut current: Option<(String, String)> = None;

    let malformed = |e: quick_xml::Error| XmlError::Malformed(e.to_string());
    loop {
        match reader.read_event().map_err(malformed)? {
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(e) => {
                let name = element_name(e.name().as_ref())?;
                if root_done {
                    return Err(XmlError::Structure("content after </xml>".into()));
                }
                if !in_root {
                    if name != "xml" {
                        return Err(XmlError::Structure(format!("root element <{name}>")));
                    }
                    in_root = true;
                } else if current.is_some() {
                    return Err(XmlError::Structure(format!("nested element <{name}>")));
                } else {
                    current = Some((name, String::new()));
                }
            }
            Event::Empty(e) => {
                let name = element_name(e.name().as_ref())?;
                if !in_root || current.is_some() || root_done {
                    return Err(XmlError::Structure(format!("misplaced <{name}/>")));
                }
                insert(&mut fields, name, String::new())?;
            }
            Event::End(_) => match current.take() {
                Some((name, value)) => insert(&mut fields, name, value)?,
                None if in_root => {
                    in_root = false;
                    root_done = true;
                }
                None => return Err(XmlError::Structure("unbalanced end tag".into())),
            },
            Event::Text(t) => {
                // Raw text: no end-of-line normalisation, the value is
                // signed exactly as sent.
                let value = t.decode().map_err(|_| XmlError::NotUtf8)?;
                match current.as_mut() {
                    Some((_, v)) => v.push_str(&value),
                    None if value.trim().is_empty() => {}
                    None => return Err(XmlError::Structure("text outside a field".into())),
                }
            }
            // `&amp;`, `&#x4e2d;`: since quick-xml 0.38 a reference is an
            // event of its own. Only the five predefined entities and
            // character references exist without a DTD.
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) if is_xml_char(c) => c.to_string(),
                    Some(c) => {
                        return Err(XmlError::Malformed(format!(
                            "character reference to U+{:04X}",
                            c as u32
                        )))
                    }
                    None => {
                        let name = r.decode().map_err(|_| XmlError::NotUtf8)?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| XmlError::Malformed(format!("unknown entity &{name};")))?
                            .to_string()
                    }
                };
                match current.as_mut() {
                    Some((_, v)) => v.push_str(&resolved),
                    None => return Err(XmlError::Structure("text outside a field".into())),
                }
            }
            Event::CData(c) => {
                let value = std::str::from_utf8(c.as_ref()).map_err(|_| XmlError::NotUtf8)?;
                match current.as_mut() {
                    Some((_, v)) => v.push_str(value),
                    None => return Err(XmlError::Structure("CDATA outside a field".into())),
                }
            }
            Event::Eof => break,
        }
    }
    if !root_done {
        return Err(XmlError::Structure("no complete <xml> element".into()));
    }
    Ok(fields)
}

fn element_name(raw: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(raw)
        .map(str::to_string)
        .map_err(|_| XmlError::NotUtf8)
}

fn insert(
    fields: &mut BTreeMap<String, String>,
    name: String,
    value: String,
) -> Result<(), XmlError> {
    if fields.len() >= MAX_FIELDS {
        return Err(XmlError::TooManyFields);
    }
    if fields.contains_key(&name) {
        // Two values for one field would let a signed value and the value
        // acted upon differ.
        return Err(XmlError::Duplicate(name));
    }
    fields.insert(name, value);
    Ok(())
}

#[cfg(test)]
mod tests;
