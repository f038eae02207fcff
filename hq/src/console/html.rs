//! Pages as text: HTML escaping, the page frame, amounts and times as an
//! operator reads them. Every value from the database or a request goes
//! through [`esc`].

use std::fmt::Write as _;

use super::auth::{Role, Session};

/// Escapes text for HTML content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fen as yuan, `¥12.34`: integer arithmetic only.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let f = fen.unsigned_abs();
    format!("{sign}¥{}.{:02}", f / 100, f % 100)
}

/// A wall-clock time in ms as HQ's local time, to the second.
pub fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "—".into())
}

/// The hidden field every form of a session carries.
pub fn csrf(s: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&s.csrf)
    )
}

/// A whole page: the header with the navigation for `who`, a notice if any,
/// then `body`. `refresh` reloads the page every so many seconds (a
/// refund on its way).
pub fn page(
    title: &str,
    who: Option<&Session>,
    notice: Option<&str>,
    body: &str,
    refresh: Option<u32>,
) -> String {
    let mut out = String::from("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = write!(out, "<title>{} · tillpay HQ</title>", esc(title));
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str("<link rel=\"stylesheet\" href=\"/console/style.css\">");
    if let Some(n) = refresh {
        let _ = write!(out, "<meta http-equiv=\"refresh\" content=\"{n}\">");
    }
    out.push_str("</head><body><header><a class=\"brand\" href=\"/console/\">tillpay HQ</a>");
    if let Some(s) = who {
        out.push_str("<nav>");
        for (href, label) in [
            ("/console/sales", "Sales"),
            ("/console/attention", "Attention"),
            ("/console/refunds", "Refunds"),
            ("/console/reconcile", "Reconciliation"),
            ("/console/totals", "Totals"),
            ("/console/shifts", "Shifts"),
        ] {
            let _ = write!(out, "<a href=\"{href}\">{label}</a>");
        }
        if s.role >= Role::Admin {
            out.push_str("<a href=\"/console/audit\">Audit log</a><a href=\"/console/accounts\">Accounts</a>");
        }
        let _ = write!(
            out,
            "</nav><form class=\"who\" method=\"post\" action=\"/console/logout\">{}<span>{} ({})</span> <button>Log out</button></form>",
            csrf(s),
            esc(&s.username),
            s.role.as_str()
        );
    }
    let _ = write!(out, "</header><main><h1>{}</h1>", esc(title));
    if let Some(n) = notice {
        let _ = write!(out, "<p class=\"notice\" role=\"status\">{}</p>", esc(n));
    }
    out.push_str(body);
    out.push_str("</main></body></html>\n");
    out
}

/// A table: a header row and rows of cells already escaped.
pub fn table(id: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table id=\"{}\"><thead><tr>", esc(id));
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"none\">nothing</td></tr>",
            head.len()
        );
    }
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A link to one sale's page.
pub fn sale_link(till: &str, order: &str) -> String {
    format!(
        "<a href=\"/console/sales/{}/{}\">{}</a>",
        esc(&url_part(till)),
        esc(&url_part(order)),
        esc(order)
    )
}

/// Percent-encodes a path segment or query value.
pub fn url_part(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_amounts_are_exact() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(yuan(1234), "¥12.34");
        assert_eq!(yuan(5), "¥0.05");
        assert_eq!(yuan(-100), "-¥1.00");
        assert_eq!(url_part("A 1/é"), "A%201%2F%C3%A9");
    }
}
