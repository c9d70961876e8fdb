//! The PyO3 face of the engine: `tcptrace._engine`, used only by `tcptrace/engine.py`.
//!
//! Three entry points, one per way tcptrace meets a capture:
//! - `Scan(path, linger, keep)`: a capture file (or `-` for standard input) read once,
//!   front to back, handing over connections in batches as they are done with;
//! - `decode_frames(frames, linktype)`: the segments among live frames;
//! - `analyse_frames(frames, linktype, client_ip, client_port)`: a live connection
//!   whose roles the caller knows, with the ladder's steps and the verdict.
//!
//! Values cross as plain tuples and strings; `engine.py` names them.

use std::net::IpAddr;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::decode::decode_segment;
use crate::diagnose::{Finding, PortTally, Rules};
use crate::grouping::{analyse, Detail, Finished, Keep, Sent};
use crate::observer::{Step, TAG_NAMES};
use crate::reader::{open, Source};
use crate::scan;
use crate::segment::{ip_text, Endpoint, Segment};
use crate::verdict::Verdict;

create_exception!(
    _engine,
    CaptureError,
    PyException,
    "A capture that cannot be read at all."
);

/// A capture read once, front to back (see the module doc).
#[pyclass(unsendable, module = "tcptrace._engine")]
struct Scan {
    inner: scan::Scan<Source>,
}

#[pymethods]
impl Scan {
    /// `keep`: None (verdicts only), a stream number (that connection's segments and
    /// steps), or -1 (every connection's).
    /// `rules`: `diagnose`'s thresholds (idle, close_wait, zero_window), in seconds.
    #[new]
    #[pyo3(signature = (path, linger, keep=None, rules=None, vxlan_ports=Vec::new()))]
    fn new(
        path: &str,
        linger: f64,
        keep: Option<i64>,
        rules: Option<(f64, f64, f64)>,
        vxlan_ports: Vec<u16>,
    ) -> PyResult<Self> {
        let reader = open(path).map_err(CaptureError::new_err)?;
        let keep = match keep {
            None => Keep::Nothing,
            Some(n) if n < 0 => Keep::All,
            Some(n) => Keep::Stream(n as u64),
        };
        let mut inner = scan::Scan::new(reader, linger, keep);
        inner.add_vxlan_ports(&vxlan_ports);
        inner.set_rules(rules_of(rules));
        Ok(Self { inner })
    }

    /// Up to `n` connections done with, reading at most `records` records for them:
    /// the findings of those that have any, as (stream, client, server, findings).
    /// `diagnose` reads a capture this way: connections without a finding never become
    /// Python objects.
    fn next_findings(&mut self, py: Python<'_>, n: usize, records: u64) -> Vec<Found> {
        let inner = &mut self.inner;
        py.detach(|| {
            let mut budget = records;
            let mut out = Vec::new();
            for _ in 0..n {
                let Some(done) = inner.next_finished_within(&mut budget) else {
                    break;
                };
                if !done.findings.is_empty() {
                    let found = done.findings.iter().map(finding_tuple).collect();
                    out.push((
                        done.stream,
                        endpoint(done.client),
                        endpoint(done.server),
                        found,
                    ));
                }
            }
            out
        })
    }

    /// The findings of every connection handed over so far: (per kind: name and count,
    /// in report order; per server port, refused and unanswered attempts).
    fn tally(&self) -> (Vec<(&'static str, u64)>, Vec<PortTuple>) {
        let tally = &self.inner.tally;
        let kinds = crate::diagnose::Kind::ALL
            .iter()
            .filter_map(|k| tally.by_kind.get(k).map(|n| (k.name(), *n)))
            .collect();
        (kinds, tally.ports().iter().map(port_tuple).collect())
    }

    /// Up to `n` connections done with, reading at most `records` records for them
    /// (so a progress bar moves even while one long connection holds everything);
    /// `exhausted` says when there will be no more.
    fn next_batch(&mut self, py: Python<'_>, n: usize, records: u64) -> Vec<Connection> {
        let inner = &mut self.inner;
        py.detach(|| {
            let mut budget = records;
            let mut out = Vec::with_capacity(n.min(4096));
            while out.len() < n {
                match inner.next_finished_within(&mut budget) {
                    Some(done) => out.push(Connection { done }),
                    None => break,
                }
            }
            out
        })
    }

    /// Everything is read and handed over.
    #[getter]
    fn exhausted(&mut self) -> bool {
        self.inner.exhausted()
    }

    /// Up to `n` connections done with, as `tcptrace/1` summary JSON lines joined in
    /// one ASCII byte string (each line ending in a newline), and how many:
    /// `summary --json` hands the bytes straight to stdout, with no Python object per
    /// connection and no text decoding and encoding in between.
    fn next_json_lines<'py>(
        &mut self,
        py: Python<'py>,
        n: usize,
        records: u64,
    ) -> (Bound<'py, PyBytes>, usize) {
        let inner = &mut self.inner;
        let (text, count) = py.detach(|| {
            let mut budget = records;
            let mut text = String::new();
            let mut count = 0;
            while count < n {
                let Some(done) = inner.next_finished_within(&mut budget) else {
                    break;
                };
                crate::jsonline::push_summary_line(&mut text, &done);
                text.push('\n');
                count += 1;
            }
            (text, count)
        });
        (PyBytes::new(py, text.as_bytes()), count)
    }

    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings().to_vec()
    }
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read()
    }
    #[getter]
    fn records(&self) -> u64 {
        self.inner.records
    }
    #[getter]
    fn segments(&self) -> u64 {
        self.inner.segments()
    }
    #[getter]
    fn connections(&self) -> u64 {
        self.inner.connections()
    }
    #[getter]
    fn peak_open(&self) -> u64 {
        self.inner.peak_open()
    }
    /// Frames that may hold TCP the decoder could not reach: (why, how many).
    #[getter]
    fn skipped(&self) -> Vec<(String, u64)> {
        self.inner.skipped()
    }
}

/// One connection the engine is done with.
#[pyclass(frozen, module = "tcptrace._engine")]
struct Connection {
    done: Finished,
}

#[pymethods]
impl Connection {
    #[getter]
    fn stream(&self) -> u64 {
        self.done.stream
    }
    #[getter]
    fn roles_guessed(&self) -> Option<String> {
        self.done.roles_guessed.clone()
    }
    #[getter]
    fn packets(&self) -> u64 {
        self.done.packets
    }
    /// (close, first_closer, rst_from, simultaneous, time_wait, client final state,
    /// server final state, conn_state, history).
    #[getter]
    fn verdict(&self) -> VerdictTuple {
        verdict_tuple(&self.done.verdict)
    }
    /// Everything but the detail in one tuple (one call per connection, for listings
    /// of a hundred thousand): (stream, client, server, vlan, roles_guessed, first,
    /// last, packets, verdict, client_sent, server_sent).
    fn fields(&self) -> Fields {
        let d = &self.done;
        (
            d.stream,
            endpoint(d.client),
            endpoint(d.server),
            d.vlan.clone(),
            d.roles_guessed.clone(),
            d.first,
            d.last,
            d.packets,
            verdict_tuple(&d.verdict),
            sent(d.client_sent),
            sent(d.server_sent),
        )
    }
    /// The connections table's row: stream, client, server (each marked `*` when the
    /// roles are a guess), VLAN stack, tunnels (`encap::short_text`), segments, how it closed, first closer, client
    /// final, server final, conn_state. One call and one list of plain strings per row:
    /// a listing may have a hundred thousand.
    fn cells(&self) -> Vec<String> {
        row_cells(&self.done)
    }
    /// Its tunnels and labels, outermost first, each as text (`encap.rs`).
    #[getter]
    fn encap(&self) -> Vec<String> {
        self.done.encap.iter().map(|l| l.to_string()).collect()
    }
    /// (segments, steps, initial states) when the scan kept this connection; else None.
    fn detail(&self) -> Option<DetailTuple> {
        self.done.detail.as_ref().map(detail_tuple)
    }
    /// The `tcptrace/1` summary record as one JSON line (no newline).
    fn json_line(&self) -> String {
        crate::jsonline::summary_line(&self.done)
    }
    /// What `diagnose` found, as `FindingTuple`s.
    fn findings(&self) -> Vec<FindingTuple> {
        self.done.findings.iter().map(finding_tuple).collect()
    }
}

/// (kind, side, frames, t, seconds, count, SYN pattern, other stream, quiet).
type FindingTuple = (
    &'static str,
    &'static str,
    Vec<u64>,
    f64,
    f64,
    u64,
    Vec<f64>,
    Option<u64>,
    f64,
);

/// One connection's findings: (stream, client, server, findings).
type Found = (u64, (String, u16), (String, u16), Vec<FindingTuple>);

/// (kind, server, connections, SYNs, clients, first, last, example streams).
type PortTuple = (
    &'static str,
    (String, u16),
    u64,
    u64,
    u64,
    f64,
    f64,
    Vec<u64>,
);

fn finding_tuple(f: &Finding) -> FindingTuple {
    (
        f.kind.name(),
        f.side.name(),
        f.frames.clone(),
        f.t,
        f.seconds,
        f.count,
        f.pattern.clone(),
        f.other_stream,
        f.quiet,
    )
}

fn port_tuple(p: &PortTally) -> PortTuple {
    (
        p.kind.name(),
        endpoint(p.server),
        p.connections,
        p.syns,
        p.clients,
        p.first,
        p.last,
        p.streams.clone(),
    )
}

fn rules_of(rules: Option<(f64, f64, f64)>) -> Rules {
    rules.map_or_else(Rules::default, |(idle, close_wait, zero_window)| Rules {
        idle,
        close_wait,
        zero_window,
    })
}

/// (t, src, sport, dst, dport, flags, seq, ack, length, win, (wscale, mss, vlan, frame,
/// ip_id, checksum), comments): PyO3 converts tuples of at most 12.
type SegmentTuple = (
    f64,
    String,
    u16,
    String,
    u16,
    u8,
    u32,
    u32,
    u32,
    u16,
    (
        Option<u8>,
        Option<u16>,
        Vec<u16>,
        u64,
        Option<u16>,
        Option<u16>,
    ),
    Vec<String>,
);
type StepTuple = (
    f64,
    &'static str,
    u8,
    i64,
    i64,
    u32,
    i64,
    &'static str,
    &'static str,
    u16,
    i64,
    f64,
);
type DetailTuple = (
    Vec<SegmentTuple>,
    Vec<StepTuple>,
    (&'static str, &'static str),
);
type VerdictTuple = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    bool,
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
    String,
    bool,
);

/// A connections-table row's cells (see `Connection.cells`).
fn row_cells(d: &Finished) -> Vec<String> {
    let v = &d.verdict;
    let mark = if d.roles_guessed.is_some() { "*" } else { "" };
    let vlan: Vec<String> = d.vlan.iter().map(u16::to_string).collect();
    vec![
        d.stream.to_string(),
        format!("{}{mark}", d.client),
        format!("{}{mark}", d.server),
        if vlan.is_empty() {
            "-".to_string()
        } else {
            vlan.join(".")
        },
        if d.encap.is_empty() {
            "-".to_string()
        } else {
            crate::encap::short_text(&d.encap)
        },
        thousands(d.packets),
        v.close_text(),
        v.first_closer.map_or("-", |r| r.name()).to_string(),
        v.final_client.name().to_string(),
        v.final_server.name().to_string(),
        v.conn_state.to_string(),
    ]
}

/// The connections table as aligned plain text: `header`'s names over every row's
/// cells, columns two spaces apart, those in `right` (indices into the header)
/// right-aligned, those in `optional` left out when every row says "-", no trailing
/// blanks. Done here for
/// listings of a hundred thousand rows, where laying them out in Python costs more
/// than reading the capture.
#[pyfunction]
fn plain_table(
    rows: Vec<PyRef<'_, Connection>>,
    header: Vec<String>,
    right: Vec<usize>,
    optional: Vec<usize>,
) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| row_cells(&r.done)).collect();
    let columns: Vec<usize> = (0..header.len())
        .filter(|i| {
            !optional.contains(i) || cells.iter().any(|c| c.get(*i).is_some_and(|v| v != "-"))
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .filter_map(|c| c.get(i))
            .map(|c| c.chars().count())
            .chain(header.get(i).map(|h| h.chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = columns.iter().map(|&i| width(i)).collect();
    let mut out = String::new();
    let mut line = |row: &[String]| {
        let start = out.len();
        for (k, (&i, &w)) in columns.iter().zip(&widths).enumerate() {
            let cell = row.get(i).map_or("", String::as_str);
            if k > 0 {
                out.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            if right.contains(&i) {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    };
    line(&header);
    for row in &cells {
        line(row);
    }
    out
}

/// 1234567 as "1,234,567", as Python's f"{n:,}".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

type Fields = (
    u64,
    (String, u16),
    (String, u16),
    Vec<u16>,
    Option<String>,
    f64,
    f64,
    u64,
    VerdictTuple,
    SentTuple,
    SentTuple,
);

/// (packets, bytes, retransmissions, zero_windows, window_probes, capture_duplicates,
/// inferred).
type SentTuple = (u64, u64, u64, u64, u64, u64, u64);

fn endpoint(e: Endpoint) -> (String, u16) {
    (ip_text(e.ip), e.port)
}

fn sent(s: Sent) -> SentTuple {
    (
        s.packets,
        s.bytes,
        s.retransmissions,
        s.zero_windows,
        s.window_probes,
        s.capture_duplicates,
        s.inferred,
    )
}

fn verdict_tuple(v: &Verdict) -> VerdictTuple {
    (
        v.close.name(),
        v.first_closer.map(|r| r.name()),
        v.rst_from,
        v.simultaneous,
        v.time_wait,
        v.final_client.name(),
        v.final_server.name(),
        v.conn_state,
        v.history.clone(),
        v.one_direction,
    )
}

fn segment_tuple(s: &Segment) -> SegmentTuple {
    (
        s.t,
        ip_text(s.src.ip),
        s.src.port,
        ip_text(s.dst.ip),
        s.dst.port,
        s.flags,
        s.seq,
        s.ack,
        s.length,
        s.win,
        (
            s.wscale,
            s.mss,
            s.vlan.clone(),
            s.frame,
            s.ip_id,
            s.checksum,
        ),
        s.comments.clone(),
    )
}

fn step_tuple(s: &Step) -> StepTuple {
    (
        s.t,
        s.sender.name(),
        s.flags,
        s.seq,
        s.ack,
        s.length,
        s.win,
        s.client_state.name(),
        s.server_state.name(),
        s.tags,
        s.acked,
        s.delay,
    )
}

fn detail_tuple(d: &Detail) -> DetailTuple {
    (
        d.segments.iter().map(segment_tuple).collect(),
        d.steps.iter().map(step_tuple).collect(),
        (d.initial.0.name(), d.initial.1.name()),
    )
}

/// Live frames (timestamp, bytes) → segments, numbered from 1 as a file would number them.
fn decode_all(frames: &[(f64, Vec<u8>)], linktype: u32) -> Vec<Segment> {
    frames
        .iter()
        .enumerate()
        .filter_map(|(i, (ts, data))| {
            let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
            decode_segment(linktype, data, len, *ts, i as u64 + 1, Vec::new())
        })
        .collect()
}

fn frames_of(frames: &[(f64, Bound<'_, PyBytes>)]) -> Vec<(f64, Vec<u8>)> {
    frames
        .iter()
        .map(|(t, b)| (*t, b.as_bytes().to_vec()))
        .collect()
}

/// The TCP segments among live frames, as tuples.
#[pyfunction]
#[pyo3(signature = (frames, linktype=1))]
fn decode_frames(frames: Vec<(f64, Bound<'_, PyBytes>)>, linktype: u32) -> Vec<SegmentTuple> {
    decode_all(&frames_of(&frames), linktype)
        .iter()
        .map(segment_tuple)
        .collect()
}

/// A live connection whose client the caller knows: (segments, steps, initial, verdict).
#[pyfunction]
#[pyo3(signature = (frames, client_ip, client_port, linktype=1))]
fn analyse_frames(
    frames: Vec<(f64, Bound<'_, PyBytes>)>,
    client_ip: &str,
    client_port: u16,
    linktype: u32,
) -> PyResult<(DetailTuple, VerdictTuple)> {
    let ip = parse_ip(client_ip)?;
    let segments = decode_all(&frames_of(&frames), linktype);
    let (detail, verdict) = analyse(
        segments,
        Endpoint {
            ip,
            port: client_port,
        },
    );
    Ok((detail_tuple(&detail), verdict_tuple(&verdict)))
}

fn parse_ip(text: &str) -> PyResult<IpAddr> {
    text.parse()
        .map_err(|_| CaptureError::new_err(format!("not an IP address: {text}")))
}

/// A model.Segment (any object with its attributes) as the engine's Segment.
fn segment_from(obj: &Bound<'_, PyAny>) -> PyResult<Segment> {
    let addr = |name: &str| -> PyResult<IpAddr> {
        let text: String = obj.getattr(name)?.extract()?;
        parse_ip(&text)
    };
    let vlan: Vec<u16> = obj.getattr("vlan")?.extract()?;
    let comments: Vec<String> = obj.getattr("comments")?.extract()?;
    let t: f64 = obj.getattr("t")?.extract()?;
    if !t.is_finite() {
        // A capture's timestamps always are; a caller's might not be.
        return Err(CaptureError::new_err(format!("not a timestamp: {t}")));
    }
    Ok(Segment {
        t,
        src: Endpoint {
            ip: addr("src")?,
            port: obj.getattr("sport")?.extract()?,
        },
        dst: Endpoint {
            ip: addr("dst")?,
            port: obj.getattr("dport")?.extract()?,
        },
        flags: obj.getattr("flags")?.extract()?,
        seq: obj.getattr("seq")?.extract()?,
        ack: obj.getattr("ack")?.extract()?,
        length: obj.getattr("length")?.extract()?,
        win: obj.getattr("win")?.extract()?,
        wscale: obj.getattr("wscale")?.extract()?,
        mss: obj.getattr("mss")?.extract()?,
        vlan,
        encap: Vec::new(),
        ip_id: optional(obj, "ip_id")?,
        checksum: optional(obj, "checksum")?,
        frame: obj.getattr("frame")?.extract()?,
        comments,
    })
}

/// An attribute a segment object may lack (older callers): None then.
fn optional(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<u16>> {
    match obj.getattr(name) {
        Ok(value) => value.extract(),
        Err(_) => Ok(None),
    }
}

fn segments_from(objs: &[Bound<'_, PyAny>]) -> PyResult<Vec<Segment>> {
    objs.iter().map(segment_from).collect()
}

/// Segments already decoded (model.Segment objects), one connection whose client the
/// caller knows: (segments, steps, initial, verdict), as analyse_frames.
#[pyfunction]
fn analyse_segments(
    segments: Vec<Bound<'_, PyAny>>,
    client_ip: &str,
    client_port: u16,
) -> PyResult<(DetailTuple, VerdictTuple)> {
    let ip = parse_ip(client_ip)?;
    let (detail, verdict) = analyse(
        segments_from(&segments)?,
        Endpoint {
            ip,
            port: client_port,
        },
    );
    Ok((detail_tuple(&detail), verdict_tuple(&verdict)))
}

/// What `diagnose` finds in one connection already decoded whose client the caller
/// knows (a live run; the capture ends at its last segment).
#[pyfunction]
#[pyo3(signature = (segments, client_ip, client_port, rules=None))]
fn diagnose_segments(
    segments: Vec<Bound<'_, PyAny>>,
    client_ip: &str,
    client_port: u16,
    rules: Option<(f64, f64, f64)>,
) -> PyResult<Vec<FindingTuple>> {
    let ip = parse_ip(client_ip)?;
    let client = Endpoint {
        ip,
        port: client_port,
    };
    let (_, _, found) =
        crate::grouping::analyse_with_findings(segments_from(&segments)?, client, &rules_of(rules));
    Ok(found.iter().map(finding_tuple).collect())
}

/// Segments already decoded, grouped into connections as a capture's would be: every
/// connection in the order it was done with, each with its segments and steps.
#[pyfunction]
fn scan_segments(segments: Vec<Bound<'_, PyAny>>, linger: f64) -> PyResult<Vec<Connection>> {
    let mut scanner = crate::grouping::Scanner::new(linger, Keep::All);
    let mut out = Vec::new();
    for seg in segments_from(&segments)? {
        scanner.record(seg.t);
        scanner.add(&seg);
        while let Some(done) = scanner.pop() {
            out.push(Connection { done });
        }
    }
    scanner.finish();
    while let Some(done) = scanner.pop() {
        out.push(Connection { done });
    }
    Ok(out)
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Scan>()?;
    m.add_class::<Connection>()?;
    m.add_function(wrap_pyfunction!(decode_frames, m)?)?;
    m.add_function(wrap_pyfunction!(analyse_frames, m)?)?;
    m.add_function(wrap_pyfunction!(analyse_segments, m)?)?;
    m.add_function(wrap_pyfunction!(scan_segments, m)?)?;
    m.add_function(wrap_pyfunction!(plain_table, m)?)?;
    m.add_function(wrap_pyfunction!(diagnose_segments, m)?)?;
    m.add("CaptureError", m.py().get_type::<CaptureError>())?;
    m.add("TAG_NAMES", TAG_NAMES.to_vec())?;
    Ok(())
}
