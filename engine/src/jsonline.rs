//! `tcptrace summary --json`: one `tcptrace/1` object per connection, one per line.
//!
//! Written here rather than in Python because it is most of a large capture's output
//! time: formatting a hundred thousand lines by hand in Rust costs milliseconds.
//! The fields and their order are the contract documented in the README.

use std::fmt::Write;

use crate::grouping::{Finished, Sent};

const SCHEMA: &str = "tcptrace/1";

/// A JSON string literal (RFC 8259 escaping; non-ASCII escaped as \uXXXX, as Python's
/// json.dumps does by default, so the output is plain ASCII).
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
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
    out
}

fn opt(value: Option<&str>) -> String {
    value.map_or_else(|| "null".to_string(), quote)
}

fn sent(s: &Sent) -> String {
    format!(
        "{{\"packets\":{},\"bytes\":{},\"retransmissions\":{},\"zero_windows\":{}}}",
        s.packets, s.bytes, s.retransmissions, s.zero_windows
    )
}

/// One connection as a `tcptrace/1` summary object on one line (no newline).
pub fn summary_line(f: &Finished) -> String {
    let v = &f.verdict;
    let mut extra = String::new();
    if !f.vlan.is_empty() {
        let ids: Vec<String> = f.vlan.iter().map(u16::to_string).collect();
        let _ = write!(extra, ",\"vlan\":[{}]", ids.join(","));
    }
    if let Some(why) = &f.roles_guessed {
        let _ = write!(extra, ",\"roles_guessed\":{}", quote(why));
    }
    format!(
        "{{\"schema\":\"{SCHEMA}\",\"command\":\"summary\",\"stream\":{},\"client\":\"{}\",\
         \"server\":\"{}\"{extra},\"first\":{:.6},\"last\":{:.6},\
         \"verdict\":{{\"close\":\"{}\",\"first_closer\":{},\"rst_from\":{},\
         \"simultaneous\":{},\"time_wait\":{},\"final\":{{\"client\":\"{}\",\"server\":\"{}\"}},\
         \"conn_state\":\"{}\",\"history\":{}}},\"sent\":{{\"client\":{},\"server\":{}}}}}",
        f.stream,
        f.client,
        f.server,
        f.first,
        f.last,
        v.close.name(),
        opt(v.first_closer.map(|r| r.name())),
        opt(v.rst_from),
        v.simultaneous,
        opt(v.time_wait),
        v.final_client.name(),
        v.final_server.name(),
        v.conn_state,
        quote(&v.history),
        sent(&f.client_sent),
        sent(&f.server_sent),
    )
}
