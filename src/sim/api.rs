//! The HTTP face of zen-sim: discovery, OpenAPI, the resource verbs, watches, subresources,
//! metrics.k8s.io and the simulator's own admin endpoints.

#![allow(clippy::similar_names)] // `received`/`receiver`, `patch`/`path` read well here

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use super::SimState;
use super::error::ApiError;
use super::events;
use super::faults::{FaultAction, delay_of};
use super::protobuf;
use super::registry::ResourceType;
use super::select::{FieldLabels, FieldSelector, LabelSelector};
use super::store::{Change, DeleteOptions, Deleted, Event, Part, PatchKind, Stored, Writer};
use super::table::{self, View};

/// A response body: whole, or a stream of watch events.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// What kube-apiserver says of a request body a custom resource cannot take.
const CUSTOM_MEDIA_TYPES: &str = "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml";

/// The largest request body accepted, as the API server's 3 MiB limit.
const MAX_BODY: usize = 3 * 1024 * 1024;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(bytes));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An object in the encoding the client asked for. A kind with no protobuf form (a custom
/// resource) is answered in JSON, which such a client also accepts.
fn object_response(query: &Query, code: StatusCode, object: &Value) -> Response<Body> {
    if query.2 == Encoding::Protobuf && query.1 == View::Object {
        match protobuf::encode(object) {
            Ok(bytes) => return protobuf_response(code, bytes),
            Err(error) => tracing::debug!(%error, "answering in JSON"),
        }
    }
    json_response(code, object)
}

fn protobuf_response(code: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(protobuf::MEDIA_TYPE),
    );
    response
}

pub(crate) fn error_response(error: &ApiError) -> Response<Body> {
    encoded_error_response(error, Encoding::Json)
}

/// A `Status` in the encoding the client asked for.
fn encoded_error_response(error: &ApiError, encoding: Encoding) -> Response<Body> {
    let code = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let status = error.status();
    let mut response = match encoding {
        Encoding::Protobuf => protobuf::encode(&status).map_or_else(
            |_| json_response(code, &status),
            |bytes| protobuf_response(code, bytes),
        ),
        Encoding::Json => json_response(code, &status),
    };
    if let Some(seconds) = error.retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The query string, decoded, and the representation and encoding the client asked for.
#[derive(Clone)]
struct Query(Vec<(String, String)>, View, Encoding);

/// How a response is written: JSON, or Kubernetes protobuf for a client whose `Accept` puts
/// it first (kubectl's typed commands and client-go's clientsets do), as kube-apiserver
/// negotiates. Watches stream JSON either way, which such clients read as well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Json,
    Protobuf,
}

impl Encoding {
    /// The first entry of `Accept` zen-sim can serve decides. A protobuf entry asking for
    /// another rendering (`as=Table`) is passed over: those are served as JSON only.
    fn of(headers: &http::HeaderMap) -> Self {
        for media in accept(headers).unwrap_or_default().split(',') {
            if protobuf::is_protobuf(media) {
                if !media.contains("as=") {
                    return Self::Protobuf;
                }
            } else if table::is_json(media) {
                return Self::Json;
            }
        }
        Self::Json
    }
}

/// The `Accept` header, when there is one.
fn accept(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
}

/// Whether `Accept` lists JSON at all (custom resources have no protobuf form).
fn acceptable_as_json(headers: &http::HeaderMap) -> bool {
    accept(headers).is_none_or(|accept| accept.split(',').any(table::is_json))
}

impl Query {
    fn parse(text: Option<&str>) -> Self {
        let pairs = text
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(key), decode(value))
            })
            .collect();
        Self(pairs, View::Object, Encoding::Json)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(name, _)| name != key);
        self.0.push((key.to_owned(), value));
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed resource path.
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_target(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => (String::new(), (*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => ((*group).to_owned(), (*version).to_owned(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..]
            if !rest.is_empty() && !matches!(rest, ["status" | "finalize"]) =>
        {
            (Some((*namespace).to_owned()), rest)
        }
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, subresource] => (*plural, Some(*name), Some(*subresource)),
        _ => return None,
    };
    Some(Target {
        group,
        version,
        namespace,
        plural: plural.to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

/// Whether the client accepts JSON or Kubernetes protobuf.
fn acceptable(headers: &http::HeaderMap) -> bool {
    accept(headers).is_none_or(|accept| {
        accept
            .split(',')
            .any(|media| table::is_json(media) || protobuf::is_protobuf(media))
    })
}

/// The error of an injected `Status` fault.
pub(crate) fn injected(code: u16, retry_after: Option<u64>, verb: &str, plural: &str) -> ApiError {
    let reason = match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    let mut error = ApiError::new(
        code,
        reason,
        format!("zen-sim injected fault: {code} on {verb} {plural}"),
    );
    error.retry_after = retry_after;
    error
}

/// The entry point: one request in, one response out.
pub(crate) async fn handle(
    state: Arc<SimState>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    state.count_request();
    if let Some(token) = &state.options.token {
        let expected = format!("Bearer {token}");
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        if given != Some(expected.as_str()) {
            return Ok(error_response(&ApiError::new(
                401,
                "Unauthorized",
                "Unauthorized",
            )));
        }
    }
    if let Some((namespace, name)) = super::portforward::target(request.uri().path()) {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        return Ok(super::portforward::handle(&state, &namespace, &name, request).await);
    }
    if !acceptable(request.headers()) {
        return Ok(error_response(&ApiError::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/vnd.kubernetes.protobuf, application/json;stream=watch",
        )));
    }
    let path = request.uri().path().to_owned();
    let response = match path.as_str() {
        "/version" => json_response(StatusCode::OK, &super::version_info()),
        "/healthz" | "/readyz" | "/livez" => Response::new(full("ok")),
        "/api" => json_response(
            StatusCode::OK,
            &json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": state.address.to_string()}],
            }),
        ),
        "/apis" => json_response(StatusCode::OK, &group_list(&state)),
        "/openapi/v2" => json_response(StatusCode::OK, &super::openapi::v2(&state)),
        "/openapi/v3" => json_response(StatusCode::OK, &super::openapi::v3_index(&state)),
        _ if path.starts_with("/openapi/v3/") => {
            match super::openapi::v3_document(&state, &path["/openapi/v3/".len()..]) {
                Some(document) => json_response(StatusCode::OK, &document),
                None => error_response(&ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )),
            }
        }
        _ if path.starts_with("/zen-sim/") => admin(&state, request).await,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => {
            match access_review(&state, request).await {
                Ok(response) => response,
                Err(error) => error_response(&error),
            }
        }
        _ => {
            if let Some(document) = discovery(&state, &path) {
                json_response(StatusCode::OK, &document)
            } else {
                let encoding = Encoding::of(request.headers());
                match resource_request(&state, request, encoding).await {
                    Ok(response) => response,
                    Err(error) => encoded_error_response(&error, encoding),
                }
            }
        }
    };
    Ok(response)
}

/// `kubectl auth can-i`: a `SelfSubjectAccessReview` answered from the stored RBAC objects for
/// the impersonated user (the admin may do anything).
async fn access_review(
    state: &SimState,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if request.method() != Method::POST {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "selfsubjectaccessreviews are only created",
        ));
    }
    let subject = super::rbac::Subject::of(request.headers());
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let (_, bytes) = read_body(request).await?;
    let body = parse_body(&bytes, &content_type)?;
    let review = super::rbac::review(&state.store, subject.as_ref(), &body)?;
    Ok(json_response(StatusCode::CREATED, &review))
}

fn group_list(state: &SimState) -> Value {
    let groups: Vec<Value> = state
        .store
        .read()
        .registry
        .groups()
        .into_iter()
        .filter(|(group, _)| !group.is_empty())
        .map(|(group, versions)| group_document(&group, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group_document(group: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|version| json!({"groupVersion": format!("{group}/{version}"), "version": version}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries, "preferredVersion": entries.first().cloned().unwrap_or_default()})
}

fn discovery(state: &SimState, path: &str) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let registry = &state.store.read().registry;
    let (group, version) = match segments.as_slice() {
        ["api", "v1"] => ("", "v1"),
        ["apis", group] => {
            let versions = registry
                .groups()
                .into_iter()
                .find(|(name, _)| name == group)?
                .1;
            return Some(group_document(group, &versions));
        }
        ["apis", group, version] => (*group, *version),
        _ => return None,
    };
    let types = registry.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let resources: Vec<Value> = types
        .iter()
        .flat_map(|resource| resource.discovery())
        .collect();
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

async fn read_body(request: Request<Incoming>) -> Result<(http::request::Parts, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|_| {
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_BODY}"),
            )
        })?
        .to_bytes();
    Ok((parts, bytes))
}

/// The body of a create or update: a protobuf one must be of the endpoint's kind.
fn object_body(
    resource: &ResourceType,
    bytes: &[u8],
    content_type: &str,
) -> Result<Value, ApiError> {
    if protobuf::is_protobuf(content_type) && !bytes.is_empty() {
        return protobuf::decode_as(bytes, &resource.api_version(), &resource.kind)
            .map_err(ApiError::bad_request);
    }
    parse_body(bytes, content_type)
}

fn parse_body(bytes: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    if protobuf::is_protobuf(content_type) {
        return protobuf::decode(bytes).map_err(|error| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as protobuf: {error}"
            ))
        });
    }
    if content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "zen-sim does not decode {content_type} request bodies: send JSON, YAML or protobuf"
            ),
        ));
    }
    let parsed = if content_type.contains("yaml") {
        // JSON is YAML, and what kubectl and kube send; real YAML must not expand aliases.
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => Ok(value),
            Err(_) if has_yaml_alias(bytes) => {
                return Err(ApiError::bad_request(
                    "YAML anchors and aliases are not accepted in request bodies: send them expanded, or send JSON",
                ));
            }
            Err(_) => serde_norway::from_slice::<Value>(bytes).map_err(|error| error.to_string()),
        }
    } else {
        serde_json::from_slice::<Value>(bytes).map_err(|error| error.to_string())
    };
    parsed.map_err(|error| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded: {error}"
        ))
    })
}

/// Whether YAML text may hold an anchor (`&name`) or an alias (`*name`): one of those after a
/// line start, a space, a flow bracket or a comma, followed by a name character. Anchors inside
/// quoted strings count too; the caller refuses rather than risk an alias bomb.
fn has_yaml_alias(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|window| {
        matches!(window[0], b'\n' | b' ' | b'\t' | b'[' | b'{' | b',')
            && matches!(window[1], b'&' | b'*')
            && (window[2].is_ascii_alphanumeric() || matches!(window[2], b'_' | b'-'))
    }) || matches!(bytes, [b'&' | b'*', next, ..] if next.is_ascii_alphanumeric())
}

fn verb_of(method: &Method, target: &Target, query: &Query) -> &'static str {
    match (method.as_str(), target.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if query.flag("watch") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn manager_of(query: &Query, headers: &http::HeaderMap) -> String {
    if let Some(manager) = query
        .get("fieldManager")
        .filter(|manager| !manager.is_empty())
    {
        return manager.to_owned();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .and_then(|agent| agent.split('/').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

#[allow(clippy::too_many_lines)] // one arm per verb, side by side
async fn resource_request(
    state: &Arc<SimState>,
    request: Request<Incoming>,
    encoding: Encoding,
) -> Result<Response<Body>, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let target = parse_target(request.uri().path()).ok_or_else(not_found)?;
    let resource = state
        .store
        .resource(&target.group, &target.version, &target.plural)
        .ok_or_else(not_found)?;
    let mut query = Query::parse(request.uri().query());
    query.2 = encoding;
    query.1 = match encoding {
        Encoding::Protobuf => View::Object,
        Encoding::Json => table::view(accept(request.headers())),
    };
    if resource.custom && query.2 == Encoding::Protobuf && !acceptable_as_json(request.headers()) {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml, application/json;stream=watch",
        ));
    }
    let verb = verb_of(request.method(), &target, &query);
    let _timer = (verb != "watch").then(|| state.time(verb));
    let namespace = target.namespace.clone().unwrap_or_default();
    if resource.namespaced && target.namespace.is_none() && !matches!(verb, "list" | "watch") {
        return Err(not_found());
    }
    let actions = state.faults.fire(&target.plural, verb);
    for action in &actions {
        match action {
            FaultAction::Status {
                code,
                retry_after_seconds,
            } => {
                return Err(injected(*code, *retry_after_seconds, verb, &target.plural));
            }
            FaultAction::ExpireResourceVersions => state.store.compact(),
            FaultAction::Delay { .. } | FaultAction::DropWatch { .. } => {}
        }
    }
    let subject = super::rbac::Subject::of(request.headers());
    let authorize = |verb: &str| match &subject {
        Some(subject) => {
            let attributes = super::rbac::Attributes {
                verb: verb.to_owned(),
                group: target.group.clone(),
                resource: target.plural.clone(),
                subresource: target.subresource.clone().unwrap_or_default(),
                namespace: namespace.clone(),
                name: target.name.clone().unwrap_or_default(),
            };
            super::rbac::check(&state.store, &state.access, subject, &attributes)
        }
        None => Ok(()),
    };
    authorize(verb)?;
    let delay = delay_of(&actions);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let drop_after = actions.iter().find_map(|action| match action {
        FaultAction::DropWatch { after_events } => Some(*after_events),
        _ => None,
    });
    if resource.read_only {
        return metrics_request(state, &resource, &target, verb);
    }
    let headers = request.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    if resource.custom
        && protobuf::is_protobuf(&content_type)
        && matches!(verb, "create" | "update")
    {
        // Custom resources have no protobuf form.
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            CUSTOM_MEDIA_TYPES,
        ));
    }
    let writer = Writer {
        manager: manager_of(&query, &headers),
        dry_run: query.get("dryRun") == Some("All"),
    };
    let part = match target.subresource.as_deref() {
        None => Part::Main,
        Some("status") if resource.has_status() => Part::Status,
        Some("scale") if resource.scale.is_some() => {
            return scale_request(state, &resource, &target, request, &query, writer).await;
        }
        Some(_) => return Err(not_found()),
    };
    let name = target.name.clone().unwrap_or_default();
    if resource.group == "events.k8s.io" {
        let served = EventsRequest {
            target: &target,
            verb,
            query: &query,
            writer: &writer,
            content_type: &content_type,
            drop_after,
        };
        return events_v1(state, &resource, served, request, authorize).await;
    }
    match verb {
        "get" => {
            let stored = state.store.get_stored(&resource, &namespace, &name)?;
            if query.1 == View::Object && query.2 == Encoding::Json {
                // The stored text as it is: no parse, no serialization.
                let mut response = Response::new(full(stored.json.clone()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Ok(response);
            }
            let object = Arc::new(stored.value());
            let version = json!({"resourceVersion": object["metadata"]["resourceVersion"]});
            Ok(object_response(
                &query,
                StatusCode::OK,
                &render(&resource, query.1, &object, &version),
            ))
        }
        "list" => list(state, &resource, target.namespace.as_deref(), &query),
        "watch" => watch(
            state,
            &resource,
            target.namespace.as_deref(),
            &query,
            drop_after,
            None,
        ),
        "create" => {
            let (_, bytes) = read_body(request).await?;
            let body = object_body(&resource, &bytes, &content_type)?;
            let created = state.store.create(&resource, &namespace, body, &writer)?;
            Ok(object_response(&query, StatusCode::CREATED, &created))
        }
        "update" => {
            let (_, bytes) = read_body(request).await?;
            let body = object_body(&resource, &bytes, &content_type)?;
            Ok(object_response(
                &query,
                StatusCode::OK,
                &*state
                    .store
                    .update(&resource, &namespace, &name, body, part, &writer)?,
            ))
        }
        "patch" => {
            let kind = patch_kind(&content_type, &query)?;
            if matches!(kind, PatchKind::Apply { .. })
                && query.get("fieldManager").is_none_or(str::is_empty)
            {
                return Err(ApiError::invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    &[(
                        "fieldManager".into(),
                        "fieldManager: Required value: is required for apply patch".into(),
                        "FieldValueRequired",
                    )],
                ));
            }
            let (_, bytes) = read_body(request).await?;
            let body = parse_body(&bytes, &content_type)?;
            let existed = state.store.get(&resource, &namespace, &name).is_ok();
            if !existed && matches!(kind, PatchKind::Apply { .. }) {
                // An apply that creates the object is authorized as a create too, with the
                // object's name (the API server's patch handler does the same).
                authorize("create")?;
            }
            let patched = state
                .store
                .patch(&resource, &namespace, &name, kind, &body, part, &writer)?;
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(object_response(&query, code, &patched))
        }
        "delete" => {
            let (_, bytes) = read_body(request).await?;
            let body = parse_body(&bytes, &content_type)?;
            let options = delete_options(&body, &query, writer.dry_run);
            match state.store.delete(&resource, &namespace, &name, &options)? {
                Deleted::Pending(object) => Ok(object_response(&query, StatusCode::OK, &object)),
                Deleted::Gone(object)
                    if resource.custom
                        || resource.plural == "services"
                        || resource.group == "apiextensions.k8s.io" =>
                {
                    Ok(object_response(&query, StatusCode::OK, &object))
                }
                Deleted::Gone(object) => Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "group": resource.group, "kind": resource.plural, "uid": object["metadata"]["uid"]},
                    }),
                )),
            }
        }
        "deletecollection" => {
            let labels = label_selector(&query)?;
            let fields = field_selector(&query, &resource)?;
            let page = state.store.list(
                &resource,
                target.namespace.as_deref(),
                &labels,
                &fields,
                None,
                None,
            )?;
            let options = DeleteOptions {
                dry_run: writer.dry_run,
                ..DeleteOptions::default()
            };
            for object in &page.items {
                let object = object.value();
                let object_namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
                let object_name = object["metadata"]["name"].as_str().unwrap_or_default();
                let _ = state
                    .store
                    .delete(&resource, object_namespace, object_name, &options);
            }
            Ok(list_response(
                &resource,
                &page.items,
                page.revision,
                None,
                None,
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({verb})"
        ))),
    }
}

/// A request for `events.k8s.io/v1` Events, answered from the core group's Events.
struct EventsRequest<'a> {
    target: &'a Target,
    verb: &'static str,
    query: &'a Query,
    writer: &'a Writer,
    content_type: &'a str,
    drop_after: Option<u64>,
}

/// `events.k8s.io/v1` Events: one storage with the core group's `v1` Events, as the API server
/// keeps them, each read and written through [`events`]'s conversion.
#[allow(clippy::too_many_lines)] // one arm per verb, as `resource_request` has
async fn events_v1(
    state: &Arc<SimState>,
    served: &ResourceType,
    request: EventsRequest<'_>,
    http: Request<Incoming>,
    authorize: impl Fn(&str) -> Result<(), ApiError>,
) -> Result<Response<Body>, ApiError> {
    let core = state.store.resource("", "v1", "events").ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })?;
    let EventsRequest {
        target,
        verb,
        query,
        writer,
        content_type,
        drop_after,
    } = request;
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    // Field selectors are checked against this group's field labels, then renamed.
    let mut core_query = query.clone();
    if let Some(text) = query.get("fieldSelector") {
        field_selector(query, served)?;
        core_query.set("fieldSelector", events::field_selector_to_core(text));
    }
    let shown = |object: &Value| Arc::new(events::to_v1(object));
    match verb {
        "get" => {
            let object = shown(&*state.store.get(&core, &namespace, &name)?);
            let version = json!({"resourceVersion": object["metadata"]["resourceVersion"]});
            Ok(object_response(
                query,
                StatusCode::OK,
                &render(served, query.1, &object, &version),
            ))
        }
        "list" => {
            let limit = query
                .get("limit")
                .and_then(|limit| limit.parse::<usize>().ok())
                .filter(|limit| *limit > 0);
            let page = state.store.list(
                &core,
                target.namespace.as_deref(),
                &label_selector(query)?,
                &field_selector(&core_query, &core)?,
                limit,
                query.get("continue").filter(|token| !token.is_empty()),
            )?;
            let metadata = list_metadata(page.revision, page.next, page.remaining);
            let items: Vec<Arc<Value>> =
                page.items.iter().map(|item| shown(&item.value())).collect();
            let rendered = match query.1 {
                View::Table => table::table(served, &items, &metadata),
                View::Object => {
                    let items: Vec<&Value> = items.iter().map(|item| &**item).collect();
                    json!({"kind": "EventList", "apiVersion": served.api_version(),
                           "metadata": metadata, "items": items})
                }
                View::Metadata => table::metadata_list(&items, &metadata),
            };
            Ok(json_response(StatusCode::OK, &rendered))
        }
        "watch" => watch(
            state,
            &core,
            target.namespace.as_deref(),
            &core_query,
            drop_after,
            Some((served, events::to_v1)),
        ),
        "create" => {
            let (_, bytes) = read_body(http).await?;
            let body = parse_body(&bytes, content_type)?;
            if let Some(causes) = events::invalid(&body, &namespace) {
                let causes: Vec<(String, String, &'static str)> = causes
                    .into_iter()
                    .map(|(field, message)| (field, message, "FieldValueInvalid"))
                    .collect();
                let named = body["metadata"]["name"].as_str().unwrap_or_default();
                return Err(ApiError::invalid("Event", "events.k8s.io", named, &causes));
            }
            let created = state
                .store
                .create(&core, &namespace, events::to_core(&body), writer)?;
            Ok(object_response(
                query,
                StatusCode::CREATED,
                &events::to_v1(&created),
            ))
        }
        "update" => {
            let (_, bytes) = read_body(http).await?;
            let body = events::to_core(&parse_body(&bytes, content_type)?);
            let updated = state
                .store
                .update(&core, &namespace, &name, body, Part::Main, writer)?;
            Ok(object_response(
                query,
                StatusCode::OK,
                &events::to_v1(&updated),
            ))
        }
        "patch" => {
            let kind = patch_kind(content_type, query)?;
            let (_, bytes) = read_body(http).await?;
            let body = parse_body(&bytes, content_type)?;
            let body = if matches!(kind, PatchKind::Json) {
                events::json_patch_to_core(&body)
            } else {
                events::to_core(&body)
            };
            let existed = state.store.get(&core, &namespace, &name).is_ok();
            if !existed && matches!(kind, PatchKind::Apply { .. }) {
                authorize("create")?;
            }
            let patched =
                state
                    .store
                    .patch(&core, &namespace, &name, kind, &body, Part::Main, writer)?;
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(object_response(query, code, &events::to_v1(&patched)))
        }
        "delete" => {
            let options = DeleteOptions {
                dry_run: writer.dry_run,
                ..DeleteOptions::default()
            };
            let uid = match state.store.delete(&core, &namespace, &name, &options)? {
                Deleted::Pending(object) | Deleted::Gone(object) => {
                    object["metadata"]["uid"].clone()
                }
            };
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": served.group, "kind": served.plural, "uid": uid},
                }),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "zen-sim does not simulate {verb} of events.k8s.io Events (the core group's Events take it)"
        ))),
    }
}

fn patch_kind(content_type: &str, query: &Query) -> Result<PatchKind, ApiError> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchKind::Apply {
            force: query.flag("force"),
        }),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
            ),
        )),
    }
}

fn delete_options(body: &Value, query: &Query, dry_run: bool) -> DeleteOptions {
    let preconditions = &body["preconditions"];
    DeleteOptions {
        uid: preconditions["uid"].as_str().map(str::to_owned),
        resource_version: preconditions["resourceVersion"].as_str().map(str::to_owned),
        propagation: body["propagationPolicy"]
            .as_str()
            .or_else(|| query.get("propagationPolicy"))
            .map(str::to_owned),
        dry_run: dry_run
            || body["dryRun"]
                .as_array()
                .is_some_and(|modes| modes.iter().any(|mode| mode == "All")),
    }
}

fn label_selector(query: &Query) -> Result<LabelSelector, ApiError> {
    LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)
}

fn field_selector(query: &Query, resource: &ResourceType) -> Result<FieldSelector, ApiError> {
    FieldSelector::parse(
        query.get("fieldSelector").unwrap_or_default(),
        &FieldLabels::of(&resource.group, &resource.kind, resource.custom),
    )
    .map_err(ApiError::bad_request)
}

fn list(
    state: &SimState,
    resource: &ResourceType,
    namespace: Option<&str>,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let labels = label_selector(query)?;
    let fields = field_selector(query, resource)?;
    let limit = query
        .get("limit")
        .and_then(|limit| limit.parse::<usize>().ok())
        .filter(|limit| *limit > 0);
    let page = state.store.list(
        resource,
        namespace,
        &labels,
        &fields,
        limit,
        query.get("continue").filter(|token| !token.is_empty()),
    )?;
    if query.2 == Encoding::Protobuf {
        let mut list = json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": list_metadata(page.revision, page.next, page.remaining),
        });
        list["items"] = page.items.iter().map(|item| item.value()).collect();
        return Ok(object_response(query, StatusCode::OK, &list));
    }
    if query.1 != View::Object {
        let metadata = list_metadata(page.revision, page.next, page.remaining);
        let items: Vec<Arc<Value>> = page
            .items
            .iter()
            .map(|item| Arc::new(item.value()))
            .collect();
        let rendered = match query.1 {
            View::Table => table::table(resource, &items, &metadata),
            _ => table::metadata_list(&items, &metadata),
        };
        return Ok(json_response(StatusCode::OK, &rendered));
    }
    Ok(list_response(
        resource,
        &page.items,
        page.revision,
        page.next,
        page.remaining,
    ))
}

fn list_metadata(revision: u64, next: Option<String>, remaining: Option<u64>) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(next) = next {
        metadata["continue"] = json!(next);
    }
    if let Some(remaining) = remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    metadata
}

fn list_response(
    resource: &ResourceType,
    items: &[Arc<Stored>],
    revision: u64,
    next: Option<String>,
    remaining: Option<u64>,
) -> Response<Body> {
    let metadata = list_metadata(revision, next, remaining);
    // Items are written from their stored text: nothing is parsed or serialized again.
    let size: usize = items.iter().map(|item| item.json.len() + 1).sum();
    let mut out = Vec::with_capacity(128 + size);
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":",
            resource.kind,
            resource.api_version()
        )
        .as_bytes(),
    );
    let _ = serde_json::to_writer(&mut out, &metadata);
    out.extend_from_slice(b",\"items\":[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.json);
    }
    out.extend_from_slice(b"]}");
    let mut response = Response::new(full(out));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One object as the client asked for it: itself, a one-row Table, or its metadata.
fn render(
    resource: &ResourceType,
    view: View,
    object: &Arc<Value>,
    list_metadata: &Value,
) -> Value {
    match view {
        View::Object => (**object).clone(),
        View::Table => table::table(resource, std::slice::from_ref(object), list_metadata),
        View::Metadata => table::metadata_of(object),
    }
}

/// Where a watch's lines go, and how many events it may still send (a `dropWatch` fault).
struct Outbox {
    sender: tokio::sync::mpsc::Sender<Bytes>,
    sent: u64,
    drop_after: Option<u64>,
}

impl Outbox {
    /// Sends an event; false when the watch is over (the client left, or the fault drops it).
    async fn event(&mut self, line: Bytes) -> bool {
        if self.sender.send(line).await.is_err() {
            return false;
        }
        self.sent += 1;
        !self.exhausted()
    }

    /// Sends a bookmark, which no fault counts; false when the client left.
    async fn bookmark(&mut self, line: Bytes) -> bool {
        self.sender.send(line).await.is_ok()
    }

    fn exhausted(&self) -> bool {
        self.drop_after.is_some_and(|limit| self.sent >= limit)
    }
}

/// A streaming JSON response (a watch).
fn stream_response<S>(stream: S) -> Response<Body>
where
    S: futures::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static,
{
    let mut response = Response::new(BoxBody::new(StreamBody::new(stream)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

/// One watch event line, around the object's JSON text.
fn watch_line(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// A watch event line for a value the server makes up (bookmarks).
fn watch_value_line(kind: &str, object: &Value) -> Bytes {
    watch_line(kind, &serde_json::to_vec(object).unwrap_or_default())
}

struct WatchFilter {
    resource: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl WatchFilter {
    /// The type of the event this watch sees, if any: a modification that makes the object
    /// start or stop matching the selectors is an ADDED or a DELETED, as the API server sends.
    fn admits(&self, event: &Event) -> Option<&'static str> {
        if event.resource != self.resource
            || self
                .namespace
                .as_deref()
                .is_some_and(|namespace| namespace != event.namespace)
        {
            return None;
        }
        let now = self.object_matches(&event.object);
        if event.change != Change::Modified {
            return now.then(|| event.change.as_str());
        }
        let before = event
            .previous
            .as_ref()
            .map_or(now, |previous| self.object_matches(previous));
        match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        }
    }

    fn object_matches(&self, object: &Stored) -> bool {
        self.labels.matches_with(|key| object.label(key))
            && (self.fields.is_empty() || self.fields.matches(&object.value()))
    }
}

/// A watch served as another type's: that type, and how each stored object converts to it.
type ServedAs<'a> = Option<(&'a ResourceType, fn(&Value) -> Value)>;

#[allow(clippy::too_many_lines)] // the watch's whole life: initial events, backlog, live events, bookmarks
fn watch(
    state: &Arc<SimState>,
    resource: &ResourceType,
    namespace: Option<&str>,
    query: &Query,
    drop_after: Option<u64>,
    served_as: ServedAs<'_>,
) -> Result<Response<Body>, ApiError> {
    let filter = WatchFilter {
        resource: resource.group_resource(),
        namespace: namespace.map(str::to_owned),
        labels: label_selector(query)?,
        fields: field_selector(query, resource)?,
    };
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query.flag("sendInitialEvents");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|seconds| seconds.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let requested = query.get("resourceVersion").unwrap_or_default();
    let (initial, start_revision, backlog, mut receiver) =
        if requested.is_empty() || requested == "0" || send_initial {
            let (objects, revision, receiver) = state.store.watch_current(resource, namespace);
            let objects: Vec<Arc<Stored>> = objects
                .into_iter()
                .filter(|object| filter.object_matches(object))
                .collect();
            (objects, revision, Vec::new(), receiver)
        } else {
            let revision: u64 = requested.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {requested}"))
            })?;
            // A version from the future (a client that outlived an earlier simulator) starts now.
            let revision = revision.min(state.store.revision());
            match state.store.watch_from(resource, revision) {
                Ok((backlog, receiver)) => (Vec::new(), revision, backlog, receiver),
                // As the API server does: the watch starts, then says 410 Gone in an ERROR event,
                // which tells watchers to list again.
                Err(error) if error.code == 410 => {
                    let line = watch_value_line("ERROR", &error.status());
                    return Ok(stream_response(futures::stream::once(async move {
                        Ok::<_, Infallible>(Frame::data(line))
                    })));
                }
                Err(error) => return Err(error),
            }
        };
    let (sender, mut lines) = tokio::sync::mpsc::channel::<Bytes>(256);
    let served = served_as.map_or(resource, |(served, _)| served);
    let convert = served_as.map(|(_, convert)| convert);
    let kind = served.kind.clone();
    let api_version = served.api_version();
    let interval = state.options.bookmark_interval;
    let view = query.1;
    let shown = served.clone();
    let show = move |object: &Arc<Stored>| -> Bytes {
        let converted = convert.map(|convert| convert(&object.value()));
        if view == View::Object {
            return converted.map_or_else(
                || object.json.clone(),
                |value| Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
            );
        }
        let object = Arc::new(converted.unwrap_or_else(|| object.value()));
        let version = json!({"resourceVersion": object["metadata"]["resourceVersion"]});
        Bytes::from(
            serde_json::to_vec(&render(&shown, view, &object, &version)).unwrap_or_default(),
        )
    };
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut outbox = Outbox {
            sender,
            sent: 0,
            drop_after,
        };
        let mut last = start_revision;
        if outbox.exhausted() {
            return;
        }
        for object in &initial {
            if !outbox.event(watch_line("ADDED", &show(object))).await {
                return;
            }
        }
        if send_initial && bookmarks {
            let bookmark = json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": start_revision.to_string(),
                                   "annotations": {"k8s.io/initial-events-end": "true"}}});
            if !outbox
                .bookmark(watch_value_line("BOOKMARK", &bookmark))
                .await
            {
                return;
            }
        }
        for (event, seen) in backlog
            .iter()
            .filter_map(|event| Some((event, filter.admits(event)?)))
        {
            last = event.revision;
            if !outbox.event(watch_line(seen, &show(&event.object))).await {
                return;
            }
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                _ = ticker.tick(), if bookmarks => {
                    let bookmark = json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": last.to_string()}});
                    if !outbox.bookmark(watch_value_line("BOOKMARK", &bookmark)).await {
                        return;
                    }
                }
                received = receiver.recv() => {
                    let Ok(event) = received else {
                        // Lagged or closed: end the watch; the client re-lists or re-watches.
                        return;
                    };
                    let seen = filter.admits(&event);
                    let Some(seen) = seen.filter(|_| event.revision > last) else {
                        continue;
                    };
                    last = event.revision;
                    if !outbox.event(watch_line(seen, &show(&event.object))).await {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        lines
            .poll_recv(cx)
            .map(|line| line.map(|line| Ok::<_, Infallible>(Frame::data(line))))
    });
    Ok(stream_response(stream))
}

fn json_path_get<'a>(object: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches('.')
        .split('.')
        .filter(|key| !key.is_empty())
        .fold(object, |node, key| &node[key])
}

fn scale_of(resource: &ResourceType, object: &Value) -> Value {
    let Some(paths) = &resource.scale else {
        return Value::Null;
    };
    let selector = match &paths.label_selector {
        Some(path) if !resource.custom => super::control::selector_of(&object["spec"]["selector"])
            .map(|_| selector_text(&object["spec"]["selector"]))
            .map_or_else(|| json_path_get(object, path).clone(), Value::String),
        Some(path) => json_path_get(object, path).clone(),
        None => Value::Null,
    };
    let mut status =
        json!({"replicas": json_path_get(object, &paths.status_replicas).as_i64().unwrap_or(0)});
    if !selector.is_null() {
        status["selector"] = selector;
    }
    // autoscaling/v1 ScaleSpec's replicas is `omitempty`: a scale of 0 has an empty spec.
    let spec = match json_path_get(object, &paths.spec_replicas).as_i64() {
        Some(replicas) if replicas != 0 => json!({"replicas": replicas}),
        _ => json!({}),
    };
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"], "uid": object["metadata"]["uid"],
                     "resourceVersion": object["metadata"]["resourceVersion"], "creationTimestamp": object["metadata"]["creationTimestamp"]},
        "spec": spec,
        "status": status,
    })
}

fn selector_text(selector: &Value) -> String {
    let mut terms: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    terms.sort();
    terms.join(",")
}

async fn scale_request(
    state: &SimState,
    resource: &ResourceType,
    target: &Target,
    request: Request<Incoming>,
    query: &Query,
    writer: Writer,
) -> Result<Response<Body>, ApiError> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let object = state.store.get(resource, &namespace, &name)?;
    let current = scale_of(resource, &object);
    let method = request.method().clone();
    if method == Method::GET {
        return Ok(object_response(query, StatusCode::OK, &current));
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let (_, bytes) = read_body(request).await?;
    let body = parse_body(&bytes, &content_type)?;
    let wanted = match method {
        Method::PUT => {
            let given = body["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            if !given.is_empty() && Some(given) != object["metadata"]["resourceVersion"].as_str() {
                return Err(ApiError::stale(&resource.group_resource(), &name));
            }
            body
        }
        Method::PATCH => {
            let mut scale = current.clone();
            match patch_kind(&content_type, query)? {
                PatchKind::Json => {
                    let patch: json_patch::Patch = serde_json::from_value(body)
                        .map_err(|error| ApiError::bad_request(error.to_string()))?;
                    json_patch::patch(&mut scale, &patch)
                        .map_err(|error| ApiError::new(422, "Invalid", error.to_string()))?;
                }
                _ => json_patch::merge(&mut scale, &body),
            }
            scale
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let replicas = wanted["spec"]["replicas"].as_i64().ok_or_else(|| {
        ApiError::invalid(
            "Scale",
            "autoscaling",
            &name,
            &[(
                "spec.replicas".into(),
                "spec.replicas: Required value".into(),
                "FieldValueRequired",
            )],
        )
    })?;
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            &name,
            &[(
                "spec.replicas".into(),
                format!(
                    "spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
                ),
                "FieldValueInvalid",
            )],
        ));
    }
    let path = resource
        .scale
        .as_ref()
        .map_or(".spec.replicas", |paths| paths.spec_replicas.as_str());
    let mut patch = json!(replicas);
    for key in path.trim_start_matches('.').split('.').rev() {
        patch = json!({ key: patch });
    }
    let updated = state.store.patch(
        resource,
        &namespace,
        &name,
        PatchKind::Merge,
        &patch,
        Part::Main,
        &writer,
    )?;
    Ok(object_response(
        query,
        StatusCode::OK,
        &scale_of(resource, &updated),
    ))
}

fn metrics_request(
    state: &SimState,
    resource: &ResourceType,
    target: &Target,
    verb: &str,
) -> Result<Response<Body>, ApiError> {
    let items = if resource.kind == "PodMetrics" {
        super::control::pod_metrics(state, target.namespace.as_deref())
    } else {
        super::control::node_metrics(state)
    };
    match (verb, &target.name) {
        ("get", Some(name)) => items
            .into_iter()
            .find(|item| item["metadata"]["name"] == name.as_str())
            .map(|item| json_response(StatusCode::OK, &item))
            .ok_or_else(|| ApiError::not_found(&resource.group_resource(), name)),
        ("list", None) => {
            let items: Vec<Arc<Stored>> = items.iter().map(Stored::new).collect();
            Ok(list_response(
                resource,
                &items,
                state.store.revision(),
                None,
                None,
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({verb} {})",
            resource.plural
        ))),
    }
}

/// `/zen-sim/v1/...`: the simulator's own endpoints (faults, stats, pod readiness).
async fn admin(state: &SimState, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let result: Result<Value, ApiError> = async {
        match (method.as_str(), path.trim_end_matches('/')) {
            ("GET", "/zen-sim/v1/faults") => Ok(json!(
                state
                    .faults
                    .list()
                    .into_iter()
                    .map(|(fault, fired)| json!({"fault": fault, "fired": fired}))
                    .collect::<Vec<_>>()
            )),
            ("POST", "/zen-sim/v1/faults") => {
                let (_, bytes) = read_body(request).await?;
                let fault = serde_json::from_slice(&bytes)
                    .map_err(|error| ApiError::bad_request(format!("not a fault: {error}")))?;
                state.faults.inject(fault);
                Ok(json!({"injected": true}))
            }
            ("DELETE", "/zen-sim/v1/faults") => {
                state.faults.clear();
                Ok(json!({"cleared": true}))
            }
            ("POST", "/zen-sim/v1/restart") => {
                let (_, bytes) = read_body(request).await?;
                let body: Value = if bytes.is_empty() {
                    json!({})
                } else {
                    serde_json::from_slice(&bytes)
                        .map_err(|error| ApiError::bad_request(format!("not a restart: {error}")))?
                };
                let down_for = match &body["downForSeconds"] {
                    Value::Null => 0.0,
                    value => value
                        .as_f64()
                        .filter(|s| s.is_finite() && (0.0..=3600.0).contains(s))
                        .ok_or_else(|| {
                            ApiError::bad_request("downForSeconds: expected seconds from 0 to 3600")
                        })?,
                };
                state.restart_soon(Duration::from_secs_f64(down_for));
                Ok(json!({"restarting": true, "downForSeconds": down_for}))
            }
            ("GET", "/zen-sim/v1/stats") => Ok(json!(state.stats())),
            ("GET", "/zen-sim/v1/access") => Ok(json!(state.access.list())),
            ("DELETE", "/zen-sim/v1/access") => {
                state.access.clear();
                Ok(json!({"cleared": true}))
            }
            ("GET", "/zen-sim/v1/timings") => Ok(json!(state.timings())),
            ("DELETE", "/zen-sim/v1/timings") => {
                state.reset_timings();
                Ok(json!({"cleared": true}))
            }
            ("POST", path)
                if path.starts_with("/zen-sim/v1/namespaces/") && path.ends_with("/ready") =>
            {
                let parts: Vec<&str> = path.split('/').collect();
                let (Some(namespace), Some(name)) = (parts.get(4), parts.get(6)) else {
                    return Err(ApiError::bad_request(
                        "expected /zen-sim/v1/namespaces/NS/pods/NAME/ready",
                    ));
                };
                let (_, bytes) = read_body(request).await?;
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(json!({"ready": true}));
                super::control::set_pod_ready(
                    state,
                    namespace,
                    name,
                    body["ready"].as_bool().unwrap_or(true),
                )?;
                Ok(json!({"ready": body["ready"]}))
            }
            _ => Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )),
        }
    }
    .await;
    match result {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(error) => error_response(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_into_targets() {
        let target = parse_target("/apis/apps/v1/namespaces/web/deployments/api/scale").unwrap();
        assert_eq!(
            (
                target.group.as_str(),
                target.namespace.as_deref(),
                target.plural.as_str()
            ),
            ("apps", Some("web"), "deployments")
        );
        assert_eq!(
            (target.name.as_deref(), target.subresource.as_deref()),
            (Some("api"), Some("scale"))
        );
        let namespace = parse_target("/api/v1/namespaces/web").unwrap();
        assert_eq!(
            (
                namespace.plural.as_str(),
                namespace.name.as_deref(),
                namespace.namespace
            ),
            ("namespaces", Some("web"), None)
        );
        let status = parse_target("/api/v1/namespaces/web/status").unwrap();
        assert_eq!(
            (status.name.as_deref(), status.subresource.as_deref()),
            (Some("web"), Some("status"))
        );
        let all = parse_target("/api/v1/pods").unwrap();
        assert_eq!((all.plural.as_str(), all.namespace), ("pods", None));
        assert!(parse_target("/nonsense").is_none());
    }

    #[test]
    fn queries_are_percent_decoded() {
        let query = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&watch=1&bad=%zz&end=%4",
        ));
        assert_eq!(query.get("labelSelector"), Some("app=web,tier in (a,b)"));
        assert!(query.flag("watch"));
        assert_eq!(query.get("bad"), Some("%zz"));
        assert_eq!(query.get("end"), Some("%4"));
    }

    #[test]
    fn yaml_with_aliases_is_refused_and_plain_yaml_read() {
        let bomb = b"a: &a [0, 0]\nb: [*a, *a, *a]\n";
        assert!(has_yaml_alias(bomb));
        let error = parse_body(bomb, "application/apply-patch+yaml").unwrap_err();
        assert!(
            error.message.contains("anchors and aliases"),
            "{}",
            error.message
        );
        let plain = b"metadata:\n  name: x\ndata: {a: '5 * 3', b: \"x&y\"}\n";
        assert!(!has_yaml_alias(plain));
        assert_eq!(
            parse_body(plain, "application/yaml").unwrap()["data"]["a"],
            "5 * 3"
        );
        assert_eq!(
            parse_body(b"{\"a\": \"*b\"}", "application/apply-patch+yaml").unwrap()["a"],
            "*b",
            "JSON is read as JSON"
        );
    }

    #[test]
    fn the_first_acceptable_media_type_decides_the_encoding() {
        let with = |accept: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
            (
                acceptable(&headers),
                Encoding::of(&headers),
                acceptable_as_json(&headers),
            )
        };
        let headers = http::HeaderMap::new();
        assert!(acceptable(&headers) && acceptable_as_json(&headers));
        assert_eq!(Encoding::of(&headers), Encoding::Json);
        assert_eq!(
            with("application/vnd.kubernetes.protobuf"),
            (true, Encoding::Protobuf, false)
        );
        assert_eq!(
            with("application/vnd.kubernetes.protobuf, application/json"),
            (true, Encoding::Protobuf, true)
        );
        assert_eq!(
            with("application/json, application/vnd.kubernetes.protobuf"),
            (true, Encoding::Json, true)
        );
        assert_eq!(
            with(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json"
            ),
            (true, Encoding::Json, true)
        );
        assert_eq!(
            with("application/json;as=Table;v=v1;g=meta.k8s.io, application/json"),
            (true, Encoding::Json, true)
        );
        assert_eq!(with("application/cbor"), (false, Encoding::Json, false));
    }
}
