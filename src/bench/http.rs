//! `bench http`: load on any HTTP endpoint, at a fixed rate (open loop) or a fixed
//! concurrency (closed loop), with the report of the netweave gateway guide (vegeta's):
//! requests, rate, throughput, duration, latencies, bytes, success ratio, status codes and
//! the set of errors, judged against latency and success targets.
//!
//! At a fixed rate, each request's latency is measured from when it was due, not from when a
//! connection was free to send it: a server that falls behind shows it in the latencies
//! (no coordinated omission).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{
    BenchError, Change, Environment, FORMAT, Latency, Progress, Recorder, Stop, Verdict, Watcher,
};
use crate::table::{Table, Tabular};

/// Latency and success targets; `None` is not judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    /// The highest acceptable p95, in milliseconds.
    pub p95_ms: Option<f64>,
    /// The highest acceptable p99, in milliseconds.
    pub p99_ms: Option<f64>,
    /// The lowest acceptable success ratio, in percent.
    pub min_success_percent: Option<f64>,
}

/// TLS settings for HTTPS targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// Accept any server certificate (for self-signed test endpoints).
    pub insecure: bool,
    /// PEM certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
}

/// How to run `bench http`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpOptions {
    /// The target, `http://` or `https://` (reports show it without user information or
    /// query).
    #[serde(serialize_with = "shown_url")]
    pub url: String,
    /// The method.
    pub method: String,
    /// Headers sent with every request (values are not written to reports).
    #[serde(serialize_with = "header_names")]
    pub headers: Vec<(String, String)>,
    /// The body sent with every request.
    #[serde(skip)]
    pub body: Option<Vec<u8>>,
    /// Requests per second, issued on schedule whatever the answers (open loop); `None`
    /// runs `concurrency` clients back to back (closed loop).
    pub rate: Option<f64>,
    /// Clients at once (closed loop), or the most requests in flight (open loop).
    pub concurrency: usize,
    /// When to stop issuing requests.
    pub stop: Stop,
    /// How long one request may take.
    #[serde(with = "super::seconds")]
    pub timeout: Duration,
    /// TLS.
    pub tls: Tls,
    /// What to judge.
    pub targets: Targets,
}

#[allow(clippy::ptr_arg)] // serde's signature
fn shown_url<S: serde::Serializer>(url: &String, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&shown(url))
}

/// A URL as reports and errors show it: no user information (credentials), no query
/// (tokens), also from text that does not parse as a URL.
fn shown(url: &str) -> String {
    if let Ok(uri) = url.parse::<http::Uri>() {
        return format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority()
                .map_or("", |a| a.as_str().rsplit('@').next().unwrap_or("")),
            uri.path()
        );
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit('@').next().unwrap_or_default();
    let scheme = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{scheme}{host}/{path}").chars().take(200).collect()
}

#[allow(clippy::ptr_arg)] // serde's signature
fn header_names<S: serde::Serializer>(
    headers: &Vec<(String, String)>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(headers.iter().map(|(name, _)| name))
}

/// The lowest `--rate`: one request in 1000 seconds.
const MIN_RATE: f64 = 0.001;

impl HttpOptions {
    /// Checks the options make a benchmark.
    ///
    /// # Errors
    /// A URL that is not http(s), a bad method or header, a concurrency, rate, duration or
    /// count out of range.
    pub fn validate(&self) -> Result<(), BenchError> {
        self.checked().map(drop)
    }

    /// The checks of [`HttpOptions::validate`], and the request they allow.
    fn checked(&self) -> Result<Template, BenchError> {
        let template = Template::new(self)?;
        if !(1..=100_000).contains(&self.concurrency) {
            return Err(BenchError::Options(format!(
                "--concurrency must be 1 to 100000, not {}",
                self.concurrency
            )));
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && (MIN_RATE..=1_000_000.0).contains(&rate))
        {
            return Err(BenchError::Options(format!(
                "--rate must be at least {MIN_RATE} (one request in 1000 s) and at most 1000000 requests a second, not {rate}"
            )));
        }
        match self.stop {
            Stop::Duration(d) if d.is_zero() => {
                return Err(BenchError::Options("--duration must be above 0".into()));
            }
            Stop::Count(0) => return Err(BenchError::Options("--count must be above 0".into())),
            _ => {}
        }
        if self.timeout.is_zero() {
            return Err(BenchError::Options("--timeout must be above 0".into()));
        }
        let targets = self.targets;
        for (name, target) in [
            ("--target-p95", targets.p95_ms),
            ("--target-p99", targets.p99_ms),
        ] {
            if target.is_some_and(|ms| !(ms.is_finite() && ms > 0.0)) {
                return Err(BenchError::Options(format!("{name} must be above 0")));
            }
        }
        if targets
            .min_success_percent
            .is_some_and(|p| !(0.0..=100.0).contains(&p))
        {
            return Err(BenchError::Options(
                "--min-success is a percentage, 0 to 100".into(),
            ));
        }
        Ok(template)
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            url: String::new(),
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            rate: None,
            concurrency: 10,
            stop: Stop::Duration(Duration::from_secs(10)),
            timeout: Duration::from_secs(30),
            tls: Tls::default(),
            targets: Targets::default(),
        }
    }
}

/// One row of the report: every request, or those of one status code or error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRow {
    /// `all`, a status code (`200`), or an error (`timeout`, `connection`).
    pub outcome: String,
    /// Requests.
    pub count: u64,
    /// Per second of the whole run.
    pub per_second: f64,
    /// Share of the successful ones (2xx and 3xx), 0 to 1.
    pub success_ratio: f64,
    /// Their latency.
    pub latency: Latency,
}

/// The report of `bench http`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpReport {
    /// [`FORMAT`].
    pub format: String,
    /// Where, when and how.
    pub environment: Environment,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Requests issued.
    pub requests: u64,
    /// Requests issued per second of the attack.
    pub rate: f64,
    /// Successful requests per second of the whole run (attack and wait).
    pub throughput: f64,
    /// Seconds from the first request to the last answer.
    pub duration_seconds: f64,
    /// Seconds issuing requests.
    pub attack_seconds: f64,
    /// Seconds waiting for the last answers after the last request.
    pub wait_seconds: f64,
    /// Latency of every request.
    pub latency: Latency,
    /// Response bytes received.
    pub bytes_in: u64,
    /// Request bytes sent.
    pub bytes_out: u64,
    /// Successful (2xx, 3xx) / all, 0 to 1.
    pub success_ratio: f64,
    /// Responses by status code.
    pub status_codes: BTreeMap<String, u64>,
    /// Requests without a response, by error.
    pub errors: BTreeMap<String, u64>,
    /// `all`, then one row per status code and error.
    pub rows: Vec<HttpRow>,
    /// Judgements against the targets.
    pub verdicts: Vec<Verdict>,
    /// Changes against a baseline, when one was given.
    #[serde(default)]
    pub changes: Vec<Change>,
}

impl HttpReport {
    /// Compares with an earlier run: p50, p99 and throughput of all requests.
    pub fn compare_with(&mut self, baseline: &Self, threshold_percent: f64) {
        self.changes = super::compare(
            &[("requests".into(), baseline.latency, baseline.throughput)],
            &[("requests".into(), self.latency, self.throughput)],
            threshold_percent,
        );
    }

    /// The report as vegeta prints it (`vegeta report`), the form the netweave guide shows.
    #[must_use]
    pub fn text(&self) -> String {
        use super::latency::format_ms as ms;
        let l = &self.latency;
        let codes = self
            .status_codes
            .iter()
            .map(|(code, n)| format!("{code}:{n}"))
            .collect::<Vec<_>>()
            .join("  ");
        #[allow(clippy::cast_precision_loss)] // byte counts
        let mean = |bytes: u64| {
            if self.requests == 0 {
                0.0
            } else {
                bytes as f64 / self.requests as f64
            }
        };
        let mut out = format!(
            "Requests      [total, rate, throughput]         {}, {:.2}, {:.2}\n\
             Duration      [total, attack, wait]             {:.3}s, {:.3}s, {}\n\
             Latencies     [min, mean, 50, 90, 95, 99, max]  {}, {}, {}, {}, {}, {}, {}\n\
             Bytes In      [total, mean]                     {}, {:.2}\n\
             Bytes Out     [total, mean]                     {}, {:.2}\n\
             Success       [ratio]                           {:.2}%\n\
             Status Codes  [code:count]                      {}\n",
            self.requests,
            self.rate,
            self.throughput,
            self.duration_seconds,
            self.attack_seconds,
            ms(self.wait_seconds * 1000.0),
            ms(l.min_ms),
            ms(l.mean_ms),
            ms(l.p50_ms),
            ms(l.p90_ms),
            ms(l.p95_ms),
            ms(l.p99_ms),
            ms(l.max_ms),
            self.bytes_in,
            mean(self.bytes_in),
            self.bytes_out,
            mean(self.bytes_out),
            self.success_ratio * 100.0,
            if codes.is_empty() { "-".into() } else { codes },
        );
        out.push_str("Error Set:\n");
        for (error, n) in &self.errors {
            let _ = writeln!(out, "{error} ({n})");
        }
        out
    }
}

impl Tabular for HttpReport {
    fn to_table(&self) -> Table {
        let none = BTreeMap::new();
        super::api::latency_table(
            "OUTCOME",
            self.rows.iter().map(|row| {
                (
                    row.outcome.clone(),
                    row.count,
                    row.per_second,
                    row.success_ratio,
                    &row.latency,
                    &none,
                )
            }),
        )
    }
}

pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP(S) client for benchmarks and Prometheus: HTTP/1.1, the system's roots plus
/// `tls.ca_file`, or no verification at all with `tls.insecure`.
pub(crate) fn client(tls: &Tls, pool_size: usize) -> Result<HttpClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        // Roots the system has; a missing store only means HTTPS targets need --cacert.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &tls.ca_file {
            use rustls::pki_types::{CertificateDer, pem::PemObject as _};
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("CA file {} holds no certificate", path.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(pool_size)
        .build(connector))
}

/// Accepts every server certificate (`--insecure`); signatures are still checked, so the
/// handshake is a real one.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The request every client sends, checked once.
struct Template {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Template {
    fn new(options: &HttpOptions) -> Result<Self, BenchError> {
        let uri: http::Uri = options
            .url
            .parse()
            .map_err(|e| BenchError::Options(format!("URL {:?}: {e}", shown(&options.url))))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(BenchError::Options(format!(
                "URL {:?}: expected http://HOST[:PORT]/PATH or https://...",
                shown(&options.url)
            )));
        }
        let method = http::Method::from_bytes(options.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                BenchError::Options(format!("method {:?} is not an HTTP method", options.method))
            })?;
        let mut headers = http::HeaderMap::new();
        for (name, value) in &options.headers {
            let name = http::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| BenchError::Options(format!("header name {name:?} is not valid")))?;
            let value = http::HeaderValue::from_str(value.trim()).map_err(|_| {
                BenchError::Options(format!("the value of header {name} is not valid"))
            })?;
            headers.append(name, value);
        }
        Ok(Self {
            method,
            uri,
            headers,
            body: options.body.clone().map(Bytes::from).unwrap_or_default(),
        })
    }

    fn request(&self) -> http::Request<Full<Bytes>> {
        let mut request = http::Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }

    /// The URL as reports show it: no user information, no query.
    fn shown(&self) -> String {
        format!(
            "{}://{}{}",
            self.uri.scheme_str().unwrap_or("http"),
            self.uri
                .authority()
                .map_or("", |a| a.as_str().rsplit('@').next().unwrap_or("")),
            self.uri.path()
        )
    }
}

/// What the clients share.
#[derive(Default)]
struct Tally {
    by_outcome: BTreeMap<String, Recorder>,
    all: Recorder,
    bytes_in: u64,
    bytes_out: u64,
    succeeded: u64,
    errors: BTreeMap<String, u64>,
    codes: BTreeMap<String, u64>,
}

struct Shared {
    client: HttpClient,
    template: Template,
    timeout: Duration,
    tally: Mutex<Tally>,
    done: AtomicU64,
    failed: AtomicU64,
}

impl Shared {
    /// Sends one request; its latency counts from `due`.
    async fn send(&self, due: Instant) {
        let request = self.template.request();
        let sent_bytes = self.template.body.len() as u64;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body.len() as u64))
        };
        let result = tokio::time::timeout(self.timeout, exchange).await;
        let latency = due.elapsed();
        let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        tally.all.record(latency);
        tally.bytes_out += sent_bytes;
        let outcome = match result {
            Ok(Ok((status, received))) => {
                tally.bytes_in += received;
                let code = status.as_u16().to_string();
                *tally.codes.entry(code.clone()).or_default() += 1;
                if status.is_success() || status.is_redirection() {
                    tally.succeeded += 1;
                } else {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                }
                code
            }
            Ok(Err(error)) => {
                let key = error_key(error.as_ref());
                *tally.errors.entry(key.clone()).or_default() += 1;
                self.failed.fetch_add(1, Ordering::Relaxed);
                key
            }
            Err(_) => {
                *tally.errors.entry("timeout".into()).or_default() += 1;
                self.failed.fetch_add(1, Ordering::Relaxed);
                "timeout".into()
            }
        };
        tally.by_outcome.entry(outcome).or_default().record(latency);
        drop(tally);
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// An error's shortest useful name: `connection refused`, `tls: ...`, or its message.
fn error_key(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        deepest = cause.to_string();
        current = cause.source();
    }
    if let Some(hyper_error) = error.downcast_ref::<hyper_util::client::legacy::Error>()
        && hyper_error.is_connect()
    {
        return format!("connect: {deepest}");
    }
    deepest
}

/// Runs `bench http`. Cancelling `cancel` stops issuing requests; those in flight finish.
///
/// # Errors
/// Bad options (URL, method, headers, rate, concurrency) or TLS material that cannot be read.
#[allow(clippy::too_many_lines)] // the open and the closed loop side by side
pub async fn run(
    options: &HttpOptions,
    watcher: &dyn Watcher,
    cancel: &CancellationToken,
) -> Result<HttpReport, BenchError> {
    let template = options.checked()?;
    let mut environment = Environment::start(options);
    environment.server = Some(template.shown());
    let client = client(&options.tls, options.concurrency).map_err(BenchError::Target)?;
    let shared = Arc::new(Shared {
        client,
        template,
        timeout: options.timeout,
        tally: Mutex::new(Tally::default()),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let begun = Instant::now();
    let progress = || {
        let (done, elapsed) = (shared.done.load(Ordering::Relaxed), begun.elapsed());
        watcher.progress(&Progress {
            elapsed,
            done,
            errors: shared.failed.load(Ordering::Relaxed),
            fraction: options.stop.fraction(done, elapsed),
        });
    };
    let issued = Arc::new(AtomicU64::new(0));
    let limit = Arc::new(tokio::sync::Semaphore::new(options.concurrency));
    let attack = async {
        if let Some(rate) = options.rate {
            let mut number: u64 = 0;
            // A schedule beyond what a clock can hold ends the run rather than panicking.
            #[allow(clippy::cast_precision_loss)] // request numbers below 2^52
            while let Some((offset, due)) = Duration::try_from_secs_f64(number as f64 / rate)
                .ok()
                .and_then(|offset| Some((offset, begun.checked_add(offset)?)))
            {
                if !options.stop.allows(number, offset) {
                    break;
                }
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep_until(due.into()) => {}
                }
                // At most `concurrency` in flight; a late permit shows in the latency, which
                // counts from `due`.
                let permit = tokio::select! {
                    () = cancel.cancelled() => break,
                    permit = Arc::clone(&limit).acquire_owned() => permit,
                };
                let Ok(permit) = permit else { break };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    shared.send(due).await;
                    drop(permit);
                });
                number += 1;
                issued.store(number, Ordering::Relaxed);
            }
        } else {
            for _ in 0..options.concurrency {
                // Every permit is free before the attack: each client holds one until it ends.
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                    break;
                };
                let (shared, issued, cancel) =
                    (Arc::clone(&shared), Arc::clone(&issued), cancel.clone());
                let stop = options.stop;
                tokio::spawn(async move {
                    let _permit = permit;
                    loop {
                        let number = issued.fetch_add(1, Ordering::Relaxed);
                        if cancel.is_cancelled() || !stop.allows(number, begun.elapsed()) {
                            return;
                        }
                        shared.send(Instant::now()).await;
                    }
                });
            }
        }
        begun.elapsed()
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    let mut attack = std::pin::pin!(attack);
    let attack_time = loop {
        tokio::select! {
            elapsed = &mut attack => break elapsed,
            _ = ticker.tick() => progress(),
        }
    };
    // The attack is over when the last request is issued; then wait for the answers.
    let all = u32::try_from(options.concurrency).unwrap_or(u32::MAX);
    let mut drained = std::pin::pin!(limit.acquire_many(all));
    loop {
        tokio::select! {
            _ = &mut drained => break,
            _ = ticker.tick() => progress(),
        }
    }
    progress();
    let duration = begun.elapsed().as_secs_f64();
    let tally = std::mem::take(&mut *shared.tally.lock().unwrap_or_else(PoisonError::into_inner));
    let attack_seconds = if options.rate.is_some() {
        attack_time.as_secs_f64()
    } else {
        // Closed loop: the clients send until the end, so it is all attack (as vegeta counts).
        duration
    };
    environment.end();
    Ok(report(
        options,
        environment,
        &tally,
        duration,
        attack_seconds,
        cancel.is_cancelled(),
    ))
}

/// The report of a finished run.
#[allow(clippy::cast_precision_loss)] // counts
fn report(
    options: &HttpOptions,
    environment: Environment,
    tally: &Tally,
    duration: f64,
    attack_seconds: f64,
    interrupted: bool,
) -> HttpReport {
    let requests = tally.all.count();
    #[allow(clippy::cast_precision_loss)] // counts
    let ratio = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    #[allow(clippy::cast_precision_loss)] // counts
    let per_second = |n: u64, seconds: f64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    let mut rows = vec![HttpRow {
        outcome: "all".into(),
        count: requests,
        per_second: per_second(requests, duration),
        success_ratio: ratio(tally.succeeded, requests),
        latency: tally.all.summary(),
    }];
    for (outcome, recorder) in &tally.by_outcome {
        let ok = outcome
            .parse::<u16>()
            .is_ok_and(|code| (200..400).contains(&code));
        rows.push(HttpRow {
            outcome: outcome.clone(),
            count: recorder.count(),
            per_second: per_second(recorder.count(), duration),
            success_ratio: if ok { 1.0 } else { 0.0 },
            latency: recorder.summary(),
        });
    }
    let latency = tally.all.summary();
    let success_ratio = ratio(tally.succeeded, requests);
    let mut verdicts = Vec::new();
    let targets = options.targets;
    if let Some(limit) = targets.p95_ms {
        verdicts.push(Verdict::at_most(
            "p95",
            latency.p95_ms,
            limit,
            "ms",
            "--target-p95",
        ));
    }
    if let Some(limit) = targets.p99_ms {
        verdicts.push(Verdict::at_most(
            "p99",
            latency.p99_ms,
            limit,
            "ms",
            "--target-p99",
        ));
    }
    if let Some(limit) = targets.min_success_percent {
        verdicts.push(Verdict::at_least(
            "success ratio",
            success_ratio * 100.0,
            limit,
            "%",
            "--min-success",
        ));
    }
    HttpReport {
        format: FORMAT.into(),
        environment,
        interrupted,
        requests,
        rate: per_second(requests, attack_seconds),
        throughput: per_second(tally.succeeded, duration),
        duration_seconds: duration,
        attack_seconds,
        wait_seconds: (duration - attack_seconds).max(0.0),
        latency,
        bytes_in: tally.bytes_in,
        bytes_out: tally.bytes_out,
        success_ratio,
        status_codes: tally.codes.clone(),
        errors: tally.errors.clone(),
        rows,
        verdicts,
        changes: Vec::new(),
    }
}
