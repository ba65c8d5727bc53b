//! Prometheus as tune's source of history: container CPU and memory series over
//! `--history`, queried a namespace and a day at a time and streamed into the sink, so no
//! response holds more than a day of one namespace and nothing is kept after it is folded in.
//!
//! The queries are KRR's, per namespace:
//! `max by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace="NS",container!="",container!="POD"}[STEP]))`
//! and `max by (namespace, pod, container) (max_over_time(container_memory_working_set_bytes{...}[STEP]))`,
//! so every raw sample counts once: rates over consecutive windows, peaks between steps.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::TuneError;
use super::live::Sink;
use super::model::Inventory;
use super::usage::SeriesKey;

/// Longest a query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts per query when Prometheus is unavailable (503, 429, connection refused).
const ATTEMPTS: u32 = 3;
/// The time range of one query.
const WINDOW: i64 = 86_400;

/// Where and how far back to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Prometheus' base URL, `http://prometheus:9090` (a path prefix is kept).
    pub url: String,
    /// How far back.
    pub history: Duration,
    /// The resolution (query step and rate window).
    pub step: Duration,
    /// The end of the history, seconds since the epoch; `None` for now.
    pub end: Option<i64>,
}

/// The shortest and longest `--step`: rates need two scrapes in a window; a day of an hour's
/// steps is 24 points.
const STEPS: (u64, u64) = (60, 3600);
/// The longest `--history`: a year and a month.
const MAX_HISTORY: u64 = 400 * 86_400;

impl Source {
    /// Checks the source and returns its base URL.
    ///
    /// # Errors
    /// A URL that is not `http(s)://host[:port][/prefix]` or carries credentials (they
    /// would not be sent), a step that is not whole minutes from 1m to 1h, a history shorter
    /// than a step or longer than 400 days.
    pub fn validate(&self) -> Result<http::Uri, String> {
        let base: http::Uri = self
            .url
            .parse()
            .map_err(|e| format!("--prometheus {:?} is not a URL: {e}", self.url))?;
        if !matches!(base.scheme_str(), Some("http" | "https")) || base.host().is_none() {
            return Err(format!(
                "--prometheus {:?} is not an http:// or https:// URL",
                self.url
            ));
        }
        if base.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err("--prometheus carries credentials in its URL: they are not sent (reach Prometheus through a port-forward or an authenticating proxy)".into());
        }
        let step = self.step.as_secs();
        if !(STEPS.0..=STEPS.1).contains(&step)
            || self.step.subsec_nanos() != 0
            || !step.is_multiple_of(60)
        {
            return Err(format!(
                "--step must be whole minutes from 1m to 1h, not {}s",
                self.step.as_secs_f64()
            ));
        }
        let history = self.history.as_secs();
        if history < step || history > MAX_HISTORY {
            return Err(format!(
                "--history must be from one step to 400d, not {}s",
                self.history.as_secs_f64()
            ));
        }
        Ok(base)
    }
}

/// How reading is going, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Queries done.
    pub queries: u64,
    /// Queries in all.
    pub total: u64,
    /// Samples read.
    pub samples: u64,
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    metric: std::collections::HashMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

type HttpClient = crate::bench::http::HttpClient;

fn client() -> Result<HttpClient, TuneError> {
    crate::bench::http::client(&crate::bench::http::Tls::default(), 8)
        .map_err(TuneError::Prometheus)
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The CPU and memory queries for a namespace at a step.
#[must_use]
pub fn queries(namespace: &str, step: Duration) -> [(Resource, String); 2] {
    let selector = format!(
        "namespace=\"{}\",container!=\"\",container!=\"POD\"",
        escape(namespace)
    );
    let window = step.as_secs();
    [
        (
            Resource::Cpu,
            format!(
                "max by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{{{selector}}}[{window}s]))"
            ),
        ),
        // max_over_time over the step: a peak between two steps still counts.
        (
            Resource::Memory,
            format!(
                "max by (namespace, pod, container) (max_over_time(container_memory_working_set_bytes{{{selector}}}[{window}s]))"
            ),
        ),
    ]
}

/// Which resource a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// CPU cores (a rate), recorded in millicores.
    Cpu,
    /// Working-set bytes.
    Memory,
}

/// Reads the history of every namespace holding a workload of `inventory` into `sink`.
/// Returns the samples read.
///
/// # Errors
/// Prometheus unreachable or refusing a query (with its message), a malformed answer, or an
/// interruption.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
pub async fn history(
    source: &Source,
    inventory: &Inventory,
    cancel: &CancellationToken,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(Progress),
) -> Result<u64, TuneError> {
    let base = source.validate().map_err(TuneError::Invalid)?;
    let client = client()?;
    let end = source.end.unwrap_or_else(|| chrono::Utc::now().timestamp());
    // Both are bounded by `validate`: a year of seconds and an hour.
    let history = source.history.as_secs() as i64;
    let step = source.step.as_secs() as i64;
    let namespaces: BTreeSet<&str> = inventory
        .workloads()
        .iter()
        .map(|w| w.id.namespace.as_str())
        .collect();
    let windows = windows(end - history, end, step);
    let total = (namespaces.len() * windows.len() * 2) as u64;
    let mut state = Progress {
        queries: 0,
        total,
        samples: 0,
    };
    for namespace in namespaces {
        for &(start, until) in &windows {
            for (resource, query) in queries(namespace, source.step) {
                if cancel.is_cancelled() {
                    return Err(TuneError::Interrupted);
                }
                let uri = query_uri(&base)?;
                let body = form_urlencoded::Serializer::new(String::new())
                    .append_pair("query", &query)
                    .append_pair("start", &start.to_string())
                    .append_pair("end", &until.to_string())
                    .append_pair("step", &format!("{step}s"))
                    .finish();
                let response = tokio::select! {
                    response = query_range(&client, &uri, body) => response?,
                    () = cancel.cancelled() => return Err(TuneError::Interrupted),
                };
                state.samples += fold(response, resource, inventory, sink)?;
                state.queries += 1;
                progress(state);
            }
        }
    }
    Ok(state.samples)
}

/// `[start, end]` in windows of a day; each starts a step after the last ended, so no sample
/// is read twice.
fn windows(mut start: i64, end: i64, step: i64) -> Vec<(i64, i64)> {
    let mut windows = Vec::new();
    while start <= end {
        // The last evaluation point within a day of `start`: the next window starts one
        // step after it, whether or not the step divides a day.
        let until = start + ((WINDOW.min(end - start)) / step) * step;
        windows.push((start, until));
        start = until + step;
    }
    windows
}

/// `BASE/api/v1/query_range`, keeping a path prefix of the base URL.
fn query_uri(base: &http::Uri) -> Result<http::Uri, TuneError> {
    http::Uri::builder()
        .scheme(base.scheme_str().unwrap_or("http"))
        .authority(
            base.authority()
                .map(ToString::to_string)
                .unwrap_or_default(),
        )
        .path_and_query(format!(
            "{}/api/v1/query_range",
            base.path().trim_end_matches('/')
        ))
        .build()
        .map_err(|e| TuneError::Invalid(e.to_string()))
}

/// Hands every value of an answer to the sink, by workload; returns the samples taken.
#[allow(clippy::cast_possible_truncation)]
fn fold(
    answer: Vec<Series>,
    resource: Resource,
    inventory: &Inventory,
    sink: &mut dyn Sink,
) -> Result<u64, TuneError> {
    let mut samples = 0;
    for series in answer {
        let get = |label: &str| {
            series
                .metric
                .get(label)
                .map(String::as_str)
                .unwrap_or_default()
        };
        let (pod, container) = (get("pod"), get("container"));
        let Some(workload) = inventory.workload_of_pod(get("namespace"), pod) else {
            for _ in &series.values {
                sink.unmatched();
            }
            continue;
        };
        let key = SeriesKey {
            workload: workload.id.clone(),
            container: container.to_owned(),
            pod: pod.to_owned(),
        };
        for (timestamp, value) in &series.values {
            // Prometheus writes NaN and +Inf for series that reset or divide by zero.
            let Some(value) = value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
            else {
                continue;
            };
            let timestamp = *timestamp as i64;
            match resource {
                Resource::Cpu => sink.sample(&key, timestamp, Some(value * 1000.0), None)?,
                Resource::Memory => sink.sample(&key, timestamp, None, Some(value))?,
            }
            samples += 1;
        }
    }
    Ok(samples)
}

/// Runs one `query_range`, retrying while Prometheus is unavailable.
async fn query_range(
    client: &HttpClient,
    uri: &http::Uri,
    body: String,
) -> Result<Vec<Series>, TuneError> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let request = http::Request::post(uri.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .map_err(|e| TuneError::Prometheus(e.to_string()))?;
        let outcome = tokio::time::timeout(QUERY_TIMEOUT, async {
            let response = client.request(request).await.map_err(|e| {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    message = format!("{message}: {cause}");
                    source = cause.source();
                }
                (true, format!("cannot reach {uri}: {message}"))
            })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| (true, e.to_string()))?
                .to_bytes();
            Ok::<_, (bool, String)>((status, body))
        })
        .await
        .unwrap_or_else(|_| {
            Err((
                true,
                format!("no answer from {uri} in {}s", QUERY_TIMEOUT.as_secs()),
            ))
        });
        let retry = match outcome {
            Ok((status, body)) => {
                let parsed: Result<Response, _> = serde_json::from_slice(&body);
                match parsed {
                    Ok(r) if r.status == "success" => {
                        return Ok(r.data.map(|d| d.result).unwrap_or_default());
                    }
                    Ok(r) => {
                        let message = format!(
                            "{} ({}): {}",
                            status,
                            r.error_type.unwrap_or_default(),
                            r.error.unwrap_or_default()
                        );
                        (status.as_u16() == 503 || status.as_u16() == 429, message)
                    }
                    Err(_) => (
                        status.is_server_error() || status.as_u16() == 429,
                        format!(
                            "{status} from {uri}: not a Prometheus answer ({})",
                            String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
                        ),
                    ),
                }
            }
            Err(failure) => failure,
        };
        if !retry.0 || attempt >= ATTEMPTS {
            return Err(TuneError::Prometheus(retry.1));
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
        attempt += 1;
    }
}
