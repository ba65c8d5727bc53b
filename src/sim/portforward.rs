//! `pods/portforward` over WebSocket (`v4.channel.k8s.io`), as the API server proxies the
//! kubelet's: for each requested port a data channel (2i) and an error channel (2i+1), each
//! opened by a frame holding the port (two bytes, little-endian); every frame after that
//! starts with its channel's byte.
//!
//! A simulated pod has no network of its own, so its ports are stood in for by local TCP
//! servers named in an annotation: `zen-sim.kubezen.io/port-forward: "8080=127.0.0.1:41234"`
//! (a comma-separated list). A port without one, or whose server refuses, gets an error on its
//! error channel, as a kubelet reports a port nothing listens on. The stream ends when the pod
//! is deleted, replaced or stops running, as it does when a real pod is killed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::SimState;
use super::api::{Body, error_response, full};
use super::error::ApiError;
use super::faults::{FaultAction, delay_of};
use super::store::Change;

/// The annotation naming the local servers that stand in for a pod's ports.
pub const BACKENDS_ANNOTATION: &str = "zen-sim.kubezen.io/port-forward";

const PROTOCOL: &str = "v4.channel.k8s.io";

/// The most ports one request may forward.
const MAX_PORTS: usize = 32;

/// Starts a TCP echo server on a free loopback port, to stand in for a pod's port (name it in
/// [`BACKENDS_ANNOTATION`]); it runs on the current tokio runtime until that stops.
///
/// # Errors
/// No loopback port can be bound.
pub async fn echo_backend() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    Ok(address)
}

/// Whether `path` is a pod's `portforward` subresource: its namespace and name.
pub(crate) fn target(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let mut parts = rest.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(namespace), Some("pods"), Some(name), Some("portforward"), None)
            if !namespace.is_empty() && !name.is_empty() =>
        {
            Some((namespace, name))
        }
        _ => None,
    }
}

/// The ports of `?ports=80,8080` (also repeated `ports=` parameters).
fn ports(query: Option<&str>) -> Result<Vec<u16>, ApiError> {
    let mut found = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key != "ports" {
            continue;
        }
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let port = part.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| {
                ApiError::bad_request(format!("invalid port {part:?}: ports are 1 to 65535"))
            })?;
            found.push(port);
        }
    }
    if found.is_empty() {
        return Err(ApiError::bad_request(
            "at least one port is required: ?ports=PORT[,PORT...]",
        ));
    }
    if found.len() > MAX_PORTS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_PORTS} ports per request"
        )));
    }
    Ok(found)
}

/// The backends of a pod's annotation.
fn backends(pod: &Value) -> BTreeMap<u16, String> {
    pod["metadata"]["annotations"][BACKENDS_ANNOTATION]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            let (port, address) = pair.split_once('=')?;
            Some((port.trim().parse().ok()?, address.trim().to_owned()))
        })
        .collect()
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["metadata"]["deletionTimestamp"].is_null()
}

/// Answers a port-forward request: 101 and a session, or an API error. Faults injected on
/// `pods/portforward` `create` (the verb RBAC checks) apply.
pub(crate) async fn handle(
    state: &Arc<SimState>,
    namespace: &str,
    name: &str,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let actions = state.faults.fire("pods/portforward", "create");
    for action in &actions {
        if let FaultAction::Status {
            code,
            retry_after_seconds,
        } = action
        {
            let error =
                super::api::injected(*code, *retry_after_seconds, "create", "pods/portforward");
            return error_response(&error);
        }
    }
    let delay = delay_of(&actions);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match accept(state, namespace, name, &mut request) {
        Ok(response) => response,
        Err(error) => error_response(&error),
    }
}

fn accept(
    state: &Arc<SimState>,
    namespace: &str,
    name: &str,
    request: &mut Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let pods = super::control::kind(state, "", "v1", "pods")
        .ok_or_else(|| ApiError::not_found("pods", name))?;
    let pod = state.store.get(&pods, namespace, name)?;
    let ports = ports(request.uri().query())?;
    let header_text = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if !header_text(header::UPGRADE).eq_ignore_ascii_case("websocket") {
        return Err(ApiError::bad_request(
            "zen-sim serves port-forward over WebSocket (v4.channel.k8s.io) only, not SPDY: use the kube client, or kubectl with KUBECTL_PORT_FORWARD_WEBSOCKETS left on",
        ));
    }
    let offered = header_text(header::SEC_WEBSOCKET_PROTOCOL);
    if !offered.split(',').any(|p| p.trim() == PROTOCOL) {
        return Err(ApiError::bad_request(format!(
            "zen-sim speaks the {PROTOCOL} subprotocol for port-forward; offered: {offered:?}"
        )));
    }
    let key = header_text(header::SEC_WEBSOCKET_KEY);
    if key.is_empty() {
        return Err(ApiError::bad_request(
            "a WebSocket upgrade without Sec-WebSocket-Key",
        ));
    }
    if !running(&pod) {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: pod {name} is not running (phase {})",
            pod["status"]["phase"].as_str().unwrap_or("unknown")
        )));
    }
    let upgrade = hyper::upgrade::on(request);
    let session = Session {
        state: Arc::clone(state),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        backends: backends(&pod),
        ports,
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let socket =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            session.run(socket).await;
        }
    });
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(PROTOCOL),
    );
    let accept = derive_accept_key(key.as_bytes());
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|_| ApiError::bad_request("bad key"))?,
    );
    Ok(response)
}

struct Session {
    state: Arc<SimState>,
    namespace: String,
    name: String,
    uid: String,
    backends: BTreeMap<u16, String>,
    ports: Vec<u16>,
}

impl Session {
    fn still_running(&self) -> bool {
        let Some(pods) = super::control::kind(&self.state, "", "v1", "pods") else {
            return false;
        };
        self.state
            .store
            .get(&pods, &self.namespace, &self.name)
            .is_ok_and(|pod| pod["metadata"]["uid"] == self.uid.as_str() && running(&pod))
    }

    /// The local server standing in for `port`, or the error the kubelet would report.
    async fn connect(&self, port: u16) -> Result<TcpStream, String> {
        let (name, uid) = (&self.name, &self.uid);
        let Some(address) = self.backends.get(&port) else {
            return Err(format!(
                "error forwarding port {port} to pod {name}, uid {uid}: nothing stands in for this port (annotate the pod {BACKENDS_ANNOTATION}: \"{port}=HOST:PORT\")"
            ));
        };
        let address = address.parse::<SocketAddr>().map_err(|_| {
            format!("error forwarding port {port} to pod {name}: bad backend address {address:?}")
        })?;
        let backend = TcpStream::connect(address).await.map_err(|e| {
            format!(
                "error forwarding port {port} to pod {name}, uid {uid}: dial tcp {address}: {e}"
            )
        })?;
        let _ = backend.set_nodelay(true);
        Ok(backend)
    }

    /// Returns once the pod is deleted, replaced or stops running, as its events say.
    async fn until_gone(&self) {
        // Subscribed before the first look: nothing in between is missed.
        let mut events = self.state.store.subscribe();
        if !self.still_running() {
            return;
        }
        loop {
            match events.recv().await {
                Ok(event) => {
                    if event.resource == "pods"
                        && event.object.uid() == self.uid
                        && (matches!(event.change, Change::Deleted)
                            || event.object.deleting()
                            || !self.still_running())
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !self.still_running() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn run<S>(self, socket: WebSocketStream<S>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (mut sink, mut stream) = socket.split();
        let channel = |index: usize| u8::try_from(index * 2).unwrap_or(u8::MAX);
        for (index, port) in self.ports.iter().enumerate() {
            let [low, high] = port.to_le_bytes();
            for ch in [channel(index), channel(index) + 1] {
                if sink
                    .send(Message::binary(vec![ch, low, high]))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let (tx, mut from_backends) = mpsc::channel::<(usize, Option<Bytes>)>(16);
        let mut readers = tokio::task::JoinSet::new();
        let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::new();
        for (index, port) in self.ports.iter().enumerate() {
            match self.connect(*port).await {
                Ok(backend) => {
                    let (read, write) = backend.into_split();
                    writers.push(Some(write));
                    readers.spawn(read_backend(index, read, tx.clone()));
                }
                Err(message) => {
                    writers.push(None);
                    let mut frame = vec![channel(index) + 1];
                    frame.extend_from_slice(message.as_bytes());
                    if sink.send(Message::binary(frame)).await.is_err() {
                        return;
                    }
                }
            }
        }
        drop(tx);
        let mut open = writers.iter().filter(|w| w.is_some()).count();
        if open > 0 {
            // The two directions run side by side, neither waiting on the other (a backend that
            // echoes blocks on its writes until they are read), with the pod's liveness beside.
            let to_backends = async {
                while let Some(message) = stream.next().await {
                    match message {
                        Ok(Message::Binary(data)) if !data.is_empty() => {
                            let ch = usize::from(data[0]);
                            if ch % 2 == 0
                                && let Some(Some(writer)) = writers.get_mut(ch / 2)
                                && writer.write_all(&data[1..]).await.is_err()
                            {
                                writers[ch / 2] = None;
                            }
                        }
                        Ok(Message::Close(_)) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            };
            let to_client = async {
                while open > 0 {
                    match from_backends.recv().await {
                        Some((index, Some(bytes))) => {
                            let mut frame = Vec::with_capacity(bytes.len() + 1);
                            frame.push(channel(index));
                            frame.extend_from_slice(&bytes);
                            if sink.send(Message::binary(frame)).await.is_err() {
                                return;
                            }
                        }
                        Some((_, None)) => open -= 1,
                        None => return,
                    }
                }
            };
            tokio::select! {
                () = to_backends => {}
                () = to_client => {}
                () = self.until_gone() => {}
            }
        }
        readers.shutdown().await;
        drop(writers);
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    }
}

/// Sends what the backend of port `index` writes, then `None` at its end.
async fn read_backend(
    index: usize,
    mut read: tokio::net::tcp::OwnedReadHalf,
    tx: mpsc::Sender<(usize, Option<Bytes>)>,
) {
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        match read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((index, Some(Bytes::copy_from_slice(&buffer[..n]))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = tx.send((index, None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ports_are_read_as_the_api_server_reads_them() {
        assert_eq!(
            target("/api/v1/namespaces/ns/pods/web-0/portforward"),
            Some(("ns", "web-0"))
        );
        assert_eq!(target("/api/v1/namespaces/ns/pods/web-0"), None);
        assert_eq!(
            target("/api/v1/namespaces/ns/pods/web-0/portforward/x"),
            None
        );
        assert_eq!(ports(Some("&ports=80%2C1234")).unwrap(), [80, 1234]);
        assert_eq!(ports(Some("ports=80&ports=81")).unwrap(), [80, 81]);
        assert!(
            ports(None)
                .unwrap_err()
                .message
                .contains("at least one port")
        );
        assert!(ports(Some("ports=0")).is_err());
        assert!(ports(Some("ports=70000")).is_err());
        let pod = serde_json::json!({"metadata": {"annotations": {BACKENDS_ANNOTATION: "80=127.0.0.1:9, 81 = [::1]:10,bad"}}});
        assert_eq!(
            backends(&pod),
            BTreeMap::from([(80, "127.0.0.1:9".to_owned()), (81, "[::1]:10".to_owned())])
        );
    }
}
