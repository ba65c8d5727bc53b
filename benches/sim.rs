//! zen-sim's capacity: memory for N objects, GETs per second on loopback, and creates per
//! second with JSON bodies against protobuf ones (what kubectl's typed commands send).
//!
//! `cargo bench --bench sim -- [--objects N] [--seconds S] [--connections C] [--creates N]`
//! (defaults 100,000 / 5 / 16 / 60,000). The load comes from the same process on the same
//! cores, so the rate is a floor: an external client (wrk) sees more.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use kubezen::sim::{Sim, SimOptions};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn argument(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|index| args.get(index + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(address: &str) -> Sender {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

async fn send(sender: &mut Sender, method: &str, path: &str, body: Option<String>) -> (u16, Bytes) {
    send_as(
        sender,
        method,
        path,
        Bytes::from(body.unwrap_or_default()),
        JSON,
    )
    .await
}

/// A request's Content-Type and Accept.
type Media = (&'static str, &'static str);
const JSON: Media = ("application/json", "application/json");
/// As kubectl's typed commands send them.
const PROTOBUF: Media = (
    "application/vnd.kubernetes.protobuf",
    "application/vnd.kubernetes.protobuf, */*",
);

async fn send_as(
    sender: &mut Sender,
    method: &str,
    path: &str,
    body: Bytes,
    (content_type, accept): Media,
) -> (u16, Bytes) {
    sender.ready().await.expect("ready");
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", content_type)
        .header("accept", accept)
        .body(Full::new(body))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, bytes)
}

/// A `ConfigMap` of the load's size, named `name`.
fn config_map(name: &str, index: u64) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench", "shard": format!("s{}", index % 16), "tier": "web"},
                     "annotations": {"owner": format!("team-{}", index % 7)}},
        "data": {"mode": "fast", "replicas": "3", "url": format!("http://svc-{index}.bench.svc:8080/path")},
    })
}

/// `count` creates by `connections` clients, each body made beforehand; creates per second.
#[allow(clippy::cast_precision_loss)]
async fn creates(address: &str, connections: u64, count: u64, prefix: &str, media: Media) -> f64 {
    let bodies: Vec<Bytes> = (0..count)
        .map(|index| {
            let object = config_map(&format!("{prefix}-{index}"), index);
            if media == PROTOBUF {
                Bytes::from(kubezen::sim::protobuf::encode(&object).expect("a ConfigMap encodes"))
            } else {
                Bytes::from(serde_json::to_vec(&object).expect("JSON"))
            }
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..connections {
        let (bodies, next, address) = (Arc::clone(&bodies), Arc::clone(&next), address.to_owned());
        clients.push(tokio::spawn(async move {
            let mut sender = connect(&address).await;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = usize::try_from(index)
                    .ok()
                    .and_then(|index| bodies.get(index))
                else {
                    break;
                };
                let (status, answer) = send_as(
                    &mut sender,
                    "POST",
                    "/api/v1/namespaces/bench/configmaps",
                    body.clone(),
                    media,
                )
                .await;
                assert_eq!(status, 201, "create: {}", String::from_utf8_lossy(&answer));
                assert_eq!(
                    answer.starts_with(b"k8s\0"),
                    media == PROTOBUF,
                    "answered as asked"
                );
            }
        }));
    }
    for client in clients {
        client.await.expect("client");
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// Creates with JSON bodies and with protobuf ones, in alternating rounds so that both meet
/// the same store sizes and machine noise.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
async fn compare_creates(address: &str, connections: u64, create_count: u64) {
    let rounds = 10;
    let (mut json_rate, mut protobuf_rate) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let count = create_count / rounds / 2;
        // Each goes first in every other round, as the store grows round by round; the names
        // are of one length, since a longer name makes a bigger object.
        if round % 2 == 0 {
            json_rate
                .push(creates(address, connections, count, &format!("js-{round}"), JSON).await);
        }
        protobuf_rate.push(
            creates(
                address,
                connections,
                count,
                &format!("pb-{round}"),
                PROTOBUF,
            )
            .await,
        );
        if round % 2 == 1 {
            json_rate
                .push(creates(address, connections, count, &format!("js-{round}"), JSON).await);
        }
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (json_rate, protobuf_rate) = (median(&mut json_rate), median(&mut protobuf_rate));
    println!(
        "create: JSON {json_rate:.0} creates/s, protobuf {protobuf_rate:.0} creates/s (median of {rounds} alternating rounds of {} each): protobuf/JSON = {:.2}",
        create_count / rounds / 2,
        protobuf_rate / json_rate
    );
}

#[allow(clippy::print_stdout, clippy::cast_precision_loss)] // a benchmark prints its figures
fn main() {
    let objects = argument("--objects", 100_000);
    let create_count = argument("--creates", 60_000);
    let seconds = argument("--seconds", 5);
    let connections = argument("--connections", 16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let sim = Sim::start(SimOptions { nodes: 1, history: std::env::var("SIM_HISTORY").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000), ..SimOptions::default() }).await.expect("zen-sim");
        let address = sim.url().trim_start_matches("http://").to_owned();
        let mut admin = connect(&address).await;
        let (status, _) = send(&mut admin, "POST", "/api/v1/namespaces", Some(r#"{"metadata":{"name":"bench"}}"#.into())).await;
        assert_eq!(status, 201);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_bytes();

        // Load: configmaps of a typical size (labels, an annotation, three data keys), created
        // by `connections` clients at once.
        let start = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut loaders = Vec::new();
        for _ in 0..connections {
            let next = Arc::clone(&next);
            let address = address.clone();
            loaders.push(tokio::spawn(async move {
                let mut sender = connect(&address).await;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= objects {
                        break;
                    }
                    let body = format!(
                        r#"{{"metadata":{{"name":"cm-{index}","labels":{{"app":"bench","shard":"s{}","tier":"web"}},"annotations":{{"owner":"team-{}"}}}},"data":{{"mode":"fast","replicas":"3","url":"http://svc-{index}.bench.svc:8080/path"}}}}"#,
                        index % 16,
                        index % 7
                    );
                    let (status, _) = send(&mut sender, "POST", "/api/v1/namespaces/bench/configmaps", Some(body)).await;
                    assert_eq!(status, 201, "create cm-{index}");
                }
            }));
        }
        for loader in loaders {
            loader.await.expect("loader");
        }
        let load_seconds = start.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_bytes();
        let grown = after.saturating_sub(before);
        println!("objects: {objects} created in {load_seconds:.1} s ({:.0} creates/s)", objects as f64 / load_seconds);
        println!(
            "memory: RSS {:.1} MB before, {:.1} MB after: {:.1} MB for {objects} objects ({:.0} bytes each)",
            before as f64 / 1e6,
            after as f64 / 1e6,
            grown as f64 / 1e6,
            grown as f64 / objects.max(1) as f64
        );

        // GETs of random objects by `connections` keep-alive clients for `seconds`.
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut clients = Vec::new();
        for client in 0..connections {
            let done = Arc::clone(&done);
            let address = address.clone();
            clients.push(tokio::spawn(async move {
                let mut sender = connect(&address).await;
                let mut rng = fastrand::Rng::with_seed(client);
                while Instant::now() < deadline {
                    let path = format!("/api/v1/namespaces/bench/configmaps/cm-{}", rng.u64(..objects));
                    let (status, body) = send(&mut sender, "GET", &path, None).await;
                    assert_eq!(status, 200);
                    assert!(!body.is_empty());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for client in clients {
            client.await.expect("client");
        }
        let gets = done.load(Ordering::Relaxed);
        println!(
            "get: {gets} GETs in {seconds} s by {connections} connections: {:.0} GETs/s (client and server share 2 worker threads)",
            gets as f64 / seconds as f64
        );

        compare_creates(&address, connections, create_count).await;
        println!("sim stats: {:?}", sim.stats());
    });
}
