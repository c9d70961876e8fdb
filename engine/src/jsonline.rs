//! `tcptrace summary --json`: one `tcptrace/1` object per connection, one per line.
//!
//! Written here rather than in Python because it is most of a large capture's output
//! time: formatting a hundred thousand lines by hand in Rust costs milliseconds.
//! The fields and their order are the contract documented in the README.

use std::fmt::Write;

use crate::grouping::{Finished, Sent};

const SCHEMA: &str = "tcptrace/1";

/// Appends `text` as a JSON string literal (RFC 8259 escaping; non-ASCII escaped as
/// \uXXXX, as Python's json.dumps does by default, so the output is plain ASCII).
fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a JSON string, or null.
fn push_opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(text) => push_quoted(out, text),
        None => out.push_str("null"),
    }
}

/// Appends `n` in decimal, as `{}` writes it, without the formatting machinery: seven
/// counts per side per line made `write!` a visible share of summary's time.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Digits only, so always UTF-8.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

fn push_sent(out: &mut String, s: &Sent) {
    let fields = [
        ("{\"packets\":", s.packets),
        (",\"bytes\":", s.bytes),
        (",\"retransmissions\":", s.retransmissions),
        (",\"zero_windows\":", s.zero_windows),
        (",\"window_probes\":", s.window_probes),
        (",\"capture_duplicates\":", s.capture_duplicates),
        (",\"inferred\":", s.inferred),
    ];
    for (key, value) in fields {
        out.push_str(key);
        push_u64(out, value);
    }
    out.push('}');
}

/// One connection as a `tcptrace/1` summary object on one line, appended to `out`
/// (no newline). Written piece by piece into one buffer: it runs once per connection
/// of captures with millions of them.
pub fn push_summary_line(out: &mut String, f: &Finished) {
    let v = &f.verdict;
    let _ = write!(
        out,
        "{{\"schema\":\"{SCHEMA}\",\"command\":\"summary\",\"stream\":{},\"client\":\"{}\",\
         \"server\":\"{}\"",
        f.stream, f.client, f.server
    );
    if !f.vlan.is_empty() {
        out.push_str(",\"vlan\":[");
        for (i, id) in f.vlan.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{id}");
        }
        out.push(']');
    }
    if !f.encap.is_empty() {
        out.push_str(",\"encap\":[");
        for (i, layer) in f.encap.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_quoted(out, &layer.to_string());
        }
        out.push(']');
    }
    if let Some(why) = &f.roles_guessed {
        out.push_str(",\"roles_guessed\":");
        push_quoted(out, why);
    }
    let _ = write!(
        out,
        ",\"first\":{:.6},\"last\":{:.6},\"verdict\":{{\"close\":\"{}\",\"first_closer\":",
        f.first,
        f.last,
        v.close.name()
    );
    push_opt(out, v.first_closer.map(|r| r.name()));
    out.push_str(",\"rst_from\":");
    push_opt(out, v.rst_from);
    let _ = write!(out, ",\"simultaneous\":{},\"time_wait\":", v.simultaneous);
    push_opt(out, v.time_wait);
    let _ = write!(
        out,
        ",\"final\":{{\"client\":\"{}\",\"server\":\"{}\"}},\"conn_state\":\"{}\",\"history\":",
        v.final_client.name(),
        v.final_server.name(),
        v.conn_state
    );
    push_quoted(out, &v.history);
    if v.one_direction {
        out.push_str(",\"one_direction\":true");
    }
    out.push_str("},\"sent\":{\"client\":");
    push_sent(out, &f.client_sent);
    out.push_str(",\"server\":");
    push_sent(out, &f.server_sent);
    out.push_str("},\"findings\":[");
    for (i, finding) in f.findings.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_quoted(out, finding.kind.name());
    }
    out.push_str("]}");
}

/// One connection as a `tcptrace/1` summary object on one line (no newline).
pub fn summary_line(f: &Finished) -> String {
    let mut out = String::with_capacity(512);
    push_summary_line(&mut out, f);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_to_plain_ascii() {
        let mut out = String::new();
        push_quoted(&mut out, "a\"b\\c\n\u{1b}[2J é \u{202e} 😀");
        assert_eq!(out, r#""a\"b\\c\n\u001b[2J \u00e9 \u202e \ud83d\ude00""#);
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        let edges = [0, 7, 10, 99, 100, 12345, u64::from(u32::MAX), u64::MAX];
        for n in edges {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn null_for_nothing() {
        let mut out = String::new();
        push_opt(&mut out, None);
        push_opt(&mut out, Some("client"));
        assert_eq!(out, r#"null"client""#);
    }
}
