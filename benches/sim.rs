//! zen-sim's capacity: memory for N objects and GETs per second on loopback.
//!
//! `cargo bench --bench sim -- [--objects N] [--seconds S] [--connections C]`
//! (defaults 100,000 / 5 / 16). The load comes from the same process on the same cores, so the
//! rate is a floor: an external client (wrk) sees more.

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
    sender.ready().await.expect("ready");
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
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

#[allow(clippy::print_stdout, clippy::cast_precision_loss)] // a benchmark prints its figures
fn main() {
    let objects = argument("--objects", 100_000);
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
        println!("sim stats: {:?}", sim.stats());
    });
}
