//! Snapshots: a directory holding a cluster's workloads and their usage series, recorded once
//! (`kubectl zen tune snapshot DIR`, or any program that writes the format) and analysed
//! later, offline, as often as wanted, from the plugin or from Python.
//!
//! The format (`kubezen.tune.snapshot/v1`), all UTF-8:
//!
//! - `snapshot.json`: `{"format": "kubezen.tune.snapshot/v1", "recorded": RFC 3339 time,
//!   "source": what the usage came from, "cluster": the API server, "intervalSeconds": N}`.
//! - `objects.jsonl`: one Kubernetes object per line, as the API serves it: workloads
//!   (Deployments, `StatefulSets`, `DaemonSets`, `ReplicaSets`, Jobs, `CronJobs`, Pods), HPAs,
//!   PDBs, Services, and Pods for OOM kills and owners.
//! - `series.csv`: `series,namespace,kind,workload,container,pod`: one line per container of
//!   a pod; `series` is a whole number naming it in `samples.csv`.
//! - `samples.csv`: `series,timestamp,cpu_millicores,memory_bytes`: one line per sample;
//!   timestamp in seconds since the epoch; either value may be empty.
//!
//! Reading streams `samples.csv` into sketches: memory stays bounded by the number of series,
//! whatever the number of samples.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read as _, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::TuneError;
use super::model::{Inventory, InventoryBuilder, WorkloadKind, WorkloadRef};
use super::usage::{SeriesId, SeriesKey, SeriesStats, Usage};

/// The format name written into `snapshot.json`.
pub const FORMAT: &str = "kubezen.tune.snapshot/v1";

/// Longest line read from any snapshot file (objects included): 16 MiB.
const MAX_LINE: usize = 16 << 20;

/// What `snapshot.json` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Always [`FORMAT`].
    pub format: String,
    /// When it was recorded (RFC 3339).
    pub recorded: String,
    /// Where the usage came from.
    pub source: String,
    /// The API server, if any.
    #[serde(default)]
    pub cluster: String,
    /// Seconds between samples of a series.
    #[serde(default)]
    pub interval_seconds: u64,
}

impl Meta {
    /// The meta of a snapshot recorded now from `source` on `cluster`, a sample every
    /// `interval`.
    #[must_use]
    pub fn now(source: &str, cluster: &str, interval: std::time::Duration) -> Self {
        Self {
            format: FORMAT.into(),
            recorded: chrono::Utc::now().to_rfc3339(),
            source: source.into(),
            cluster: cluster.into(),
            interval_seconds: interval.as_secs(),
        }
    }
}

/// A snapshot read back: workloads, usage and what the snapshot says of itself.
#[derive(Debug)]
pub struct Snapshot {
    /// `snapshot.json`.
    pub meta: Meta,
    /// The objects.
    pub inventory: Inventory,
    /// The usage series, summarised.
    pub usage: Usage,
    /// Samples read.
    pub samples: u64,
}

fn io_error(path: &Path, error: &std::io::Error) -> TuneError {
    TuneError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

fn bad(path: &Path, line: u64, message: impl Into<String>) -> TuneError {
    TuneError::Snapshot {
        path: path.display().to_string(),
        line,
        message: message.into(),
    }
}

/// Reads lines of at most [`MAX_LINE`] bytes, counting them; `f` gets each line without its
/// end.
fn each_line(
    path: &Path,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), TuneError>,
) -> Result<(), TuneError> {
    let file = File::open(path).map_err(|e| io_error(path, &e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(256);
    let mut number = 0;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error(path, &e))?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        if line.len() > MAX_LINE {
            return Err(bad(path, number, "line longer than 16 MiB"));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        f(number, &line)?;
    }
}

/// Reads the snapshot in `dir`. `interrupted` is polled about every million samples. Large sample
/// files are read by one thread per core (at most 8), each over its part of the file.
///
/// # Errors
/// A missing file, a line that does not read (with file and line), a series used before it
/// is declared, or an interruption.
pub fn read(dir: &Path, interrupted: &(dyn Fn() -> bool + Sync)) -> Result<Snapshot, TuneError> {
    let meta_path = dir.join("snapshot.json");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() {
            TuneError::Io {
                path: dir.display().to_string(),
                message: "no such directory".into(),
            }
        } else {
            io_error(&meta_path, &e)
        }
    })?;
    let meta: Meta =
        serde_json::from_str(&text).map_err(|e| bad(&meta_path, e.line() as u64, e.to_string()))?;
    if meta.format != FORMAT {
        return Err(bad(
            &meta_path,
            0,
            format!("format {:?} is not {FORMAT:?}", meta.format),
        ));
    }
    let objects_path = dir.join("objects.jsonl");
    let mut builder = InventoryBuilder::new("default");
    each_line(&objects_path, |number, line| {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        builder.add(
            serde_json::from_slice(line).map_err(|e| bad(&objects_path, number, e.to_string()))?,
        );
        Ok(())
    })?;
    let inventory = builder.build();
    let mut usage = Usage::new();
    let series_path = dir.join("series.csv");
    let mut ids: HashMap<u64, SeriesId, foldhash::fast::RandomState> = HashMap::default();
    each_line(&series_path, |number, line| {
        if number == 1 {
            return expect_header(
                &series_path,
                line,
                "series,namespace,kind,workload,container,pod",
            );
        }
        let text = std::str::from_utf8(line).map_err(|_| bad(&series_path, number, "not UTF-8"))?;
        let fields: Vec<&str> = text.split(',').collect();
        let [id, namespace, kind, workload, container, pod] = fields[..] else {
            return Err(bad(
                &series_path,
                number,
                format!("{} fields, not 6", fields.len()),
            ));
        };
        let id: u64 = id.parse().map_err(|_| {
            bad(
                &series_path,
                number,
                format!("series {id:?} is not a whole number"),
            )
        })?;
        let kind = WorkloadKind::parse(kind).ok_or_else(|| {
            bad(
                &series_path,
                number,
                format!("unknown workload kind {kind:?}"),
            )
        })?;
        let key = SeriesKey {
            workload: WorkloadRef {
                namespace: namespace.to_owned(),
                kind,
                name: workload.to_owned(),
            },
            container: container.to_owned(),
            pod: pod.to_owned(),
        };
        if ids.insert(id, usage.series(key)).is_some() {
            return Err(bad(
                &series_path,
                number,
                format!("series {id} is declared twice"),
            ));
        }
        Ok(())
    })?;
    let samples_path = dir.join("samples.csv");
    let index = SeriesIndex::new(&ids);
    let (parts, samples) = read_samples(&samples_path, &index, usage.len(), interrupted)?;
    for part in parts {
        for (at, stats) in part.iter().enumerate() {
            usage.merge(index.ids[at], stats);
        }
    }
    Ok(Snapshot {
        meta,
        inventory,
        usage,
        samples,
    })
}

fn expect_header(path: &Path, line: &[u8], header: &str) -> Result<(), TuneError> {
    if line == header.as_bytes() {
        Ok(())
    } else {
        Err(bad(path, 1, format!("the header must be {header:?}")))
    }
}

/// The header of `samples.csv`.
const SAMPLES_HEADER: &str = "series,timestamp,cpu_millicores,memory_bytes";
/// Sample files smaller than this are read by one thread.
const PARALLEL_FROM: u64 = 64 << 20;

/// Series numbers of `series.csv` to positions in the usage: a table when the numbers are
/// small (the usual 0, 1, 2, ...), else a hash map.
struct SeriesIndex {
    dense: Vec<u32>,
    sparse: HashMap<u64, u32, foldhash::fast::RandomState>,
    ids: Vec<SeriesId>,
}

impl SeriesIndex {
    fn new(ids: &HashMap<u64, SeriesId, foldhash::fast::RandomState>) -> Self {
        let mut index = Self {
            dense: Vec::new(),
            sparse: HashMap::default(),
            ids: vec![SeriesId::default(); ids.len()],
        };
        let max = ids.keys().copied().max().unwrap_or(0);
        let dense = max < 1 << 24 && max < 16 * ids.len() as u64 + 1024;
        if dense {
            index.dense = vec![u32::MAX; usize::try_from(max).unwrap_or(0) + 1];
        }
        for (&number, &id) in ids {
            let at = Usage::index(id);
            index.ids[at] = id;
            let at = u32::try_from(at).unwrap_or(u32::MAX);
            if dense {
                index.dense[usize::try_from(number).unwrap_or(0)] = at;
            } else {
                index.sparse.insert(number, at);
            }
        }
        index
    }

    fn get(&self, number: u64) -> Option<usize> {
        let at = if self.dense.is_empty() {
            *self.sparse.get(&number)?
        } else {
            *self.dense.get(usize::try_from(number).ok()?)?
        };
        (at != u32::MAX).then_some(at as usize)
    }
}

/// A part's stats and sample count, or the offset of the line that failed and why.
type PartResult = Result<(Vec<SeriesStats>, u64), (u64, String)>;

/// Reads `samples.csv` into per-series stats, one part per thread; returns the parts (to
/// merge) and the samples read. An error names the line.
fn read_samples(
    path: &Path,
    index: &SeriesIndex,
    series: usize,
    interrupted: &(dyn Fn() -> bool + Sync),
) -> Result<(Vec<Vec<SeriesStats>>, u64), TuneError> {
    let mut file = File::open(path).map_err(|e| io_error(path, &e))?;
    let length = file.metadata().map_err(|e| io_error(path, &e))?.len();
    let mut header = Vec::new();
    BufReader::new(&mut file)
        .take(256)
        .read_until(b'\n', &mut header)
        .map_err(|e| io_error(path, &e))?;
    let first = header.strip_suffix(b"\n").unwrap_or(&header);
    if first.strip_suffix(b"\r").unwrap_or(first) != SAMPLES_HEADER.as_bytes() {
        return Err(bad(
            path,
            1,
            format!("the header must be {SAMPLES_HEADER:?}"),
        ));
    }
    let body = header.len() as u64;
    let threads = if length < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(8)
    } as u64;
    let bounds: Vec<u64> = (0..=threads)
        .map(|i| body + (length - body) * i / threads)
        .collect();
    let results: Vec<PartResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (start, end) = (w[0], w[1]);
                scope.spawn(move || read_part(path, start, end, index, series, interrupted))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err((0, "a reader thread failed".into())))
            })
            .collect()
    });
    let mut parts = Vec::with_capacity(results.len());
    let mut samples = 0;
    for result in results {
        match result {
            Ok((part, count)) => {
                parts.push(part);
                samples += count;
            }
            Err((_, message)) if message == INTERRUPTED => return Err(TuneError::Interrupted),
            Err((offset, message)) => return Err(bad(path, line_at(path, offset), message)),
        }
    }
    Ok((parts, samples))
}

const INTERRUPTED: &str = "interrupted";

/// The 1-based line of the byte at `offset`, for an error message.
fn line_at(path: &Path, offset: u64) -> u64 {
    let Ok(file) = File::open(path) else { return 0 };
    let mut reader = BufReader::with_capacity(1 << 20, file.take(offset));
    let mut lines = 1;
    loop {
        let Ok(buffer) = reader.fill_buf() else {
            return 0;
        };
        if buffer.is_empty() {
            return lines;
        }
        lines += memchr::memchr_iter(b'\n', buffer).count() as u64;
        let used = buffer.len();
        reader.consume(used);
    }
}

/// Reads the sample lines that start in `[start, end)` of the file.
fn read_part(
    path: &Path,
    start: u64,
    end: u64,
    index: &SeriesIndex,
    series: usize,
    interrupted: &(dyn Fn() -> bool + Sync),
) -> Result<(Vec<SeriesStats>, u64), (u64, String)> {
    use std::io::{Seek as _, SeekFrom};
    let fail = |offset: u64| move |e: std::io::Error| (offset, e.to_string());
    let mut file = File::open(path).map_err(fail(start))?;
    // A part begins at the first line that starts at or after `start`.
    let mut offset = start.saturating_sub(1);
    file.seek(SeekFrom::Start(offset)).map_err(fail(offset))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    if start > 0 {
        let mut skipped = Vec::new();
        offset += (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut skipped)
            .map_err(fail(offset))? as u64;
    }
    let mut part = Part {
        index,
        interrupted,
        stats: vec![SeriesStats::default(); series],
        batch: Vec::with_capacity(BATCH),
        count: 0,
    };
    let mut carry: Vec<u8> = Vec::new();
    let mut line_start = offset;
    while line_start < end {
        let buffer = reader.fill_buf().map_err(fail(line_start))?;
        if buffer.is_empty() {
            if !carry.is_empty() {
                part.line(&std::mem::take(&mut carry), line_start)?;
            }
            break;
        }
        if let Some(newline) = memchr::memchr(b'\n', buffer) {
            let used = newline + 1;
            if carry.is_empty() {
                part.line(&buffer[..newline], line_start)?;
            } else {
                carry.extend_from_slice(&buffer[..newline]);
                part.line(&std::mem::take(&mut carry), line_start)?;
            }
            reader.consume(used);
            offset += used as u64;
            line_start = offset;
        } else {
            if carry.len() + buffer.len() > MAX_LINE {
                return Err((line_start, "line longer than 16 MiB".into()));
            }
            carry.extend_from_slice(buffer);
            let used = buffer.len();
            reader.consume(used);
            offset += used as u64;
        }
    }
    part.fold();
    Ok((part.stats, part.count))
}

/// Samples decoded before they are folded into the stats: folding a block at a time lets the
/// processor overlap the cache misses of many series (a file is time-major, so every line
/// touches another series).
const BATCH: usize = 256;

/// One thread's part of a sample file.
struct Part<'a> {
    index: &'a SeriesIndex,
    interrupted: &'a (dyn Fn() -> bool + Sync),
    stats: Vec<SeriesStats>,
    batch: Vec<(usize, i64, Option<f64>, Option<f64>)>,
    count: u64,
}

impl Part<'_> {
    /// Decodes one line (`at`: its offset in the file, for errors).
    fn line(&mut self, line: &[u8], at: u64) -> Result<(), (u64, String)> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok(());
        }
        let (number, timestamp, cpu, memory) = sample(line).ok_or_else(|| {
            (
                at,
                format!(
                    "{:?} is not {SAMPLES_HEADER}",
                    String::from_utf8_lossy(&line[..line.len().min(200)])
                ),
            )
        })?;
        let series = self
            .index
            .get(number)
            .ok_or_else(|| (at, format!("series {number} is not in series.csv")))?;
        self.batch.push((series, timestamp, cpu, memory));
        self.count += 1;
        if self.batch.len() == BATCH {
            self.fold();
            if self.count.is_multiple_of(BATCH as u64 * 4096) && (self.interrupted)() {
                return Err((at, INTERRUPTED.to_owned()));
            }
        }
        Ok(())
    }

    fn fold(&mut self) {
        // Read each series' stats first: the loads are independent, so their cache misses
        // overlap, and the updates below find the lines in cache.
        let touched = self
            .batch
            .iter()
            .fold(0_i64, |sum, row| sum ^ self.stats[row.0].last);
        std::hint::black_box(touched);
        for &(series, timestamp, cpu, memory) in &self.batch {
            self.stats[series].record(timestamp, cpu, memory);
        }
        self.batch.clear();
    }
}

/// `series,timestamp,cpu,memory` with empty values allowed for cpu and memory, in one pass.
fn sample(line: &[u8]) -> Option<(u64, i64, Option<f64>, Option<f64>)> {
    let (series, rest) = whole_field(line)?;
    let (timestamp, rest) = whole_field(rest)?;
    let comma = memchr::memchr(b',', rest)?;
    let (cpu, memory) = (&rest[..comma], &rest[comma + 1..]);
    if memchr::memchr(b',', memory).is_some() {
        return None;
    }
    Some((
        series,
        i64::try_from(timestamp).ok()?,
        optional_number(cpu).ok()?,
        optional_number(memory).ok()?,
    ))
}

/// A whole number (below 2^64) ended by a comma, and what follows the comma.
fn whole_field(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0_u64;
    for (at, &byte) in bytes.iter().enumerate().take(21) {
        match byte {
            b'0'..=b'9' => value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?,
            b',' if at > 0 => return Some((value, &bytes[at + 1..])),
            _ => return None,
        }
    }
    None
}

/// Powers of ten that are exact as `f64`.
const POWERS: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// A field that is not a finite, non-negative number.
struct NotANumber;

/// `Ok(None)` for an empty field.
///
/// Plain decimals of up to 15 digits (what recorders write) are read exactly without the
/// general parser: an integer over a power of ten, both exact, divided with one rounding.
#[allow(clippy::cast_precision_loss)]
fn optional_number(bytes: &[u8]) -> Result<Option<f64>, NotANumber> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let (mut mantissa, mut digits, mut fraction, mut dot) = (0_u64, 0_usize, 0_usize, false);
    for &byte in bytes {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa
                    .wrapping_mul(10)
                    .wrapping_add(u64::from(byte - b'0'));
                digits += 1;
                fraction += usize::from(dot);
            }
            b'.' if !dot => dot = true,
            _ => {
                digits = usize::MAX;
                break;
            }
        }
    }
    if digits > 0 && digits <= 15 {
        return Ok(Some(mantissa as f64 / POWERS[fraction]));
    }
    let value: f64 = std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(NotANumber)?;
    if value.is_finite() && value >= 0.0 {
        Ok(Some(value))
    } else {
        Err(NotANumber)
    }
}

/// Strips `object` of what a snapshot must not carry (see [`Writer::object`]).
fn redact(object: &mut Json) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Json::as_object_mut) {
        metadata.remove("managedFields");
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Json::as_object_mut)
        {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    redact_env(object);
}

/// Drops the value of every `env` entry, at any depth, whose name configures no heap.
fn redact_env(value: &mut Json) {
    match value {
        Json::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "env"
                    && let Json::Array(entries) = child
                {
                    for entry in entries.iter_mut().filter_map(Json::as_object_mut) {
                        let name = entry.get("name").and_then(Json::as_str).unwrap_or_default();
                        if !super::runtime::HEAP_VARIABLES.contains(&name) {
                            entry.remove("value");
                        }
                    }
                } else {
                    redact_env(child);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(redact_env),
        _ => {}
    }
}

/// Writes a snapshot: objects first, then series and samples as they come.
pub struct Writer {
    dir: PathBuf,
    objects: BufWriter<File>,
    series: BufWriter<File>,
    samples: BufWriter<File>,
    ids: HashMap<SeriesKey, u64>,
    written: u64,
}

impl Writer {
    /// Starts a snapshot in `dir` (created if missing; the snapshot's files are replaced).
    ///
    /// # Errors
    /// The directory or its files cannot be written.
    pub fn create(dir: &Path, meta: &Meta) -> Result<Self, TuneError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
        let open = |name: &str| -> Result<BufWriter<File>, TuneError> {
            let path = dir.join(name);
            File::create(&path)
                .map(|f| BufWriter::with_capacity(1 << 16, f))
                .map_err(|e| io_error(&path, &e))
        };
        let meta_path = dir.join("snapshot.json");
        let text = serde_json::to_string_pretty(meta).unwrap_or_default();
        std::fs::write(&meta_path, text + "\n").map_err(|e| io_error(&meta_path, &e))?;
        let mut writer = Self {
            dir: dir.to_owned(),
            objects: open("objects.jsonl")?,
            series: open("series.csv")?,
            samples: open("samples.csv")?,
            ids: HashMap::new(),
            written: 0,
        };
        writer.write("series.csv", |w| {
            writeln!(w.series, "series,namespace,kind,workload,container,pod")
        })?;
        writer.write("samples.csv", |w| {
            writeln!(w.samples, "series,timestamp,cpu_millicores,memory_bytes")
        })?;
        Ok(writer)
    }

    fn write(
        &mut self,
        file: &str,
        f: impl FnOnce(&mut Self) -> std::io::Result<()>,
    ) -> Result<(), TuneError> {
        let path = self.dir.join(file);
        f(self).map_err(|e| io_error(&path, &e))
    }

    /// Adds an object to `objects.jsonl`, without what tune does not read and may be secret:
    /// `managedFields`, the `last-applied-configuration` annotation, and the values of
    /// environment variables other than those a heap is configured by.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn object(&mut self, object: &Json) -> Result<(), TuneError> {
        let mut object = object.clone();
        redact(&mut object);
        let line = serde_json::to_string(&object).unwrap_or_default();
        self.write("objects.jsonl", |w| writeln!(w.objects, "{line}"))
    }

    /// Adds a sample of a series (declared on first use); values the source did not have are
    /// `None`.
    ///
    /// # Errors
    /// The files cannot be written; a name holds a comma or a line break (never in
    /// Kubernetes names).
    pub fn sample(
        &mut self,
        key: &SeriesKey,
        timestamp: i64,
        cpu_millicores: Option<f64>,
        memory_bytes: Option<f64>,
    ) -> Result<(), TuneError> {
        let id = if let Some(&id) = self.ids.get(key) {
            id
        } else {
            let names = [
                &key.workload.namespace,
                &key.workload.name,
                &key.container,
                &key.pod,
            ];
            if names.iter().any(|n| n.contains([',', '\n', '\r'])) {
                return Err(TuneError::Invalid(format!(
                    "{} {}: a name holds a comma or line break",
                    key.workload, key.container
                )));
            }
            let id = self.ids.len() as u64;
            self.ids.insert(key.clone(), id);
            let line = format!(
                "{id},{},{},{},{},{}",
                key.workload.namespace,
                key.workload.kind.as_str(),
                key.workload.name,
                key.container,
                key.pod
            );
            self.write("series.csv", |w| writeln!(w.series, "{line}"))?;
            id
        };
        // What the reader refuses is written as no value.
        let value = |v: Option<f64>| {
            v.filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| format!("{v}"))
                .unwrap_or_default()
        };
        let line = format!(
            "{id},{timestamp},{},{}",
            value(cpu_millicores),
            value(memory_bytes)
        );
        self.written += 1;
        self.write("samples.csv", |w| writeln!(w.samples, "{line}"))
    }

    /// Samples written so far.
    #[must_use]
    pub fn samples(&self) -> u64 {
        self.written
    }

    /// Flushes every file.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn finish(mut self) -> Result<u64, TuneError> {
        self.write("objects.jsonl", |w| w.objects.flush())?;
        self.write("series.csv", |w| w.series.flush())?;
        self.write("samples.csv", |w| w.samples.flush())?;
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_carry_no_secrets_and_no_values_the_reader_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::now("test", "", std::time::Duration::from_secs(15));
        let mut writer = Writer::create(dir.path(), &meta).unwrap();
        let object = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "a", "managedFields": [{"manager": "x"}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "me"}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
                {"name": "DB_PASSWORD", "value": "hunter2"},
                {"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx1g"},
                {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}}}
        });
        writer.object(&object).unwrap();
        let key = SeriesKey {
            workload: WorkloadRef {
                namespace: "a".into(),
                kind: WorkloadKind::Deployment,
                name: "web".into(),
            },
            container: "app".into(),
            pod: "web-1-x".into(),
        };
        writer.sample(&key, 1, Some(f64::NAN), Some(5.0)).unwrap();
        writer
            .sample(&key, 2, Some(1.0), Some(f64::INFINITY))
            .unwrap();
        writer.finish().unwrap();
        let text = std::fs::read_to_string(dir.path().join("objects.jsonl")).unwrap();
        assert!(
            !text.contains("hunter2")
                && !text.contains("managedFields")
                && !text.contains("last-applied"),
            "{text}"
        );
        assert!(
            text.contains("-Xmx1g") && text.contains("secretKeyRef") && text.contains("\"keep\""),
            "{text}"
        );
        let samples = std::fs::read_to_string(dir.path().join("samples.csv")).unwrap();
        assert!(samples.ends_with("0,1,,5\n0,2,1,\n"), "{samples}");
        let read = read(dir.path(), &|| false).unwrap();
        assert_eq!(read.samples, 2);
    }

    #[test]
    fn sample_lines_parse_strictly() {
        assert_eq!(
            sample(b"3,1700000000,12.5,1048576"),
            Some((3, 1_700_000_000, Some(12.5), Some(1_048_576.0)))
        );
        assert_eq!(
            sample(b"3,1700000000,,1048576"),
            Some((3, 1_700_000_000, None, Some(1_048_576.0)))
        );
        assert_eq!(
            sample(b"3,1700000000,1,"),
            Some((3, 1_700_000_000, Some(1.0), None))
        );
        for bad in [
            &b"3,1700000000,1"[..],
            b"x,1,1,1",
            b"3,-1,1,1",
            b"3,1,-1,1",
            b"3,1,NaN,1",
            b"3,1,1,1,1",
            b"",
            b"99999999999999999999,1,1,1",
        ] {
            assert_eq!(sample(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
