//! The forward configuration: embedded defaults, the user's file and `-f` files, merged field
//! by field, then checked as a whole.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value as Json};

/// The embedded defaults, the first layer of every configuration.
pub const DEFAULTS: &str = include_str!("defaults.yaml");

/// The name the embedded defaults go by in errors and in `config show`.
pub const DEFAULTS_NAME: &str = "(embedded defaults)";

/// The largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The most entries a configuration may hold.
pub const MAX_ENTRIES: usize = 10_000;

/// What an entry forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// `svc/NAME`: a ready pod the Service selects, and the Service's port.
    Service,
    /// `pod/NAME`: that pod, and one of its container ports.
    Pod,
    /// `deploy/NAME`: a ready pod of the Deployment, and one of its container ports.
    Deployment,
}

impl TargetKind {
    /// The short prefix: `svc`, `pod`, `deploy`.
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Service => "svc",
            Self::Pod => "pod",
            Self::Deployment => "deploy",
        }
    }
}

/// `svc/NAME`, `pod/NAME` or `deploy/NAME` (kubectl's longer spellings are accepted too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The kind of object.
    pub kind: TargetKind,
    /// Its name.
    pub name: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.prefix(), self.name)
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let Some((kind, name)) = text.split_once('/') else {
            return Err(format!(
                "{text:?} is not KIND/NAME: write svc/NAME, pod/NAME or deploy/NAME"
            ));
        };
        let kind = match kind {
            "svc" | "service" | "services" => TargetKind::Service,
            "pod" | "pods" | "po" => TargetKind::Pod,
            "deploy" | "deployment" | "deployments" => TargetKind::Deployment,
            other => {
                return Err(format!(
                    "{other:?} is not a kind that can be forwarded to: write svc/NAME, pod/NAME or deploy/NAME"
                ));
            }
        };
        if !is_dns_subdomain(name) {
            return Err(format!(
                "{name:?} is not an object name (lowercase letters, digits, '-' and '.', at most 253)"
            ));
        }
        Ok(Self {
            kind,
            name: name.to_owned(),
        })
    }
}

/// A port of the target: a number, or a name (a Service port's or a container port's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    /// A port number.
    Number(u16),
    /// A port name (`IANA_SVC_NAME`).
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => write!(f, "{number}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl Serialize for PortRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(number) => serializer.serialize_u16(*number),
            Self::Name(name) => serializer.serialize_str(name),
        }
    }
}

/// What is behind a forward, for people: kportforward's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    /// An HTTP API.
    Rest,
    /// A gRPC or other RPC service.
    Rpc,
    /// A web UI.
    Web,
    /// Anything else.
    #[default]
    Other,
}

impl EntryType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "rest" => Self::Rest,
            "rpc" => Self::Rpc,
            "web" => Self::Web,
            "other" => Self::Other,
            _ => return None,
        })
    }
}

/// One port-forward, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The entry's name (the key under `portForwards`).
    pub name: String,
    /// What to forward to.
    pub target: Target,
    /// The target's namespace; `None` means the context's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The target's port.
    pub target_port: PortRef,
    /// The local port asked for; `None` lets the allocator choose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// What is behind it.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Listed but not run.
    pub disabled: bool,
    /// The files that set this entry's fields, first to last.
    pub sources: Vec<String>,
}

/// The settings beside the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The range automatic local ports come from, inclusive.
    pub local_ports: (u16, u16),
    /// How long a local port's availability check is trusted.
    #[serde(rename = "portCheckTTL", serialize_with = "go_duration")]
    pub port_check_ttl: Duration,
    /// The first reconnect's wait.
    #[serde(serialize_with = "go_duration")]
    pub backoff_initial: Duration,
    /// The longest reconnect wait.
    #[serde(serialize_with = "go_duration")]
    pub backoff_max: Duration,
}

fn go_duration<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_duration(*value))
}

/// A duration as the configuration writes it: `250ms`, `5s`, `1m30s`.
#[must_use]
pub fn format_duration(value: Duration) -> String {
    let millis = value.as_millis();
    if !millis.is_multiple_of(1000) || millis == 0 {
        return format!("{millis}ms");
    }
    let seconds = millis / 1000;
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// A merged, checked configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Every entry, disabled ones included, ordered by name.
    pub entries: Vec<Entry>,
    /// The settings.
    pub settings: Settings,
    /// The layers merged, first to last.
    pub layers: Vec<String>,
}

impl Config {
    /// The configuration in its file form (what `config show -o yaml` prints): read back as a
    /// layer over the defaults, it is the same configuration.
    #[must_use]
    pub fn to_document(&self) -> Json {
        let entries: Map<String, Json> = self
            .entries
            .iter()
            .map(|entry| {
                let mut fields = Map::new();
                fields.insert("target".into(), Json::from(entry.target.to_string()));
                if let Some(namespace) = &entry.namespace {
                    fields.insert("namespace".into(), Json::from(namespace.as_str()));
                }
                fields.insert(
                    "targetPort".into(),
                    serde_json::to_value(&entry.target_port).unwrap_or_default(),
                );
                if let Some(port) = entry.local_port {
                    fields.insert("localPort".into(), Json::from(port));
                }
                fields.insert(
                    "type".into(),
                    serde_json::to_value(entry.kind).unwrap_or_default(),
                );
                fields.insert("disabled".into(), Json::from(entry.disabled));
                (entry.name.clone(), Json::Object(fields))
            })
            .collect();
        let settings = &self.settings;
        serde_json::json!({
            "localPorts": format!("{}-{}", settings.local_ports.0, settings.local_ports.1),
            "portCheckTTL": format_duration(settings.port_check_ttl),
            "backoff": {
                "initial": format_duration(settings.backoff_initial),
                "max": format_duration(settings.backoff_max),
            },
            "portForwards": entries,
        })
    }
}

/// A configuration that cannot be used: where, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{message}", field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ConfigError {
    /// The file (or `(embedded defaults)`).
    pub file: String,
    /// The field's path: `portForwards.api.targetPort`; `None` for the file as a whole.
    pub field: Option<String>,
    /// What is wrong, and what to write instead.
    pub message: String,
}

impl ConfigError {
    fn new(file: &str, field: Option<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            field,
            message: message.into(),
        }
    }
}

/// The user's configuration file: `$XDG_CONFIG_HOME/kubectl-zen/forward.yaml`, else
/// `~/.config/kubectl-zen/forward.yaml`.
#[must_use]
pub fn user_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(base.join("kubectl-zen").join("forward.yaml"))
}

/// One layer: its name and its text.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The file's name, as errors say it.
    pub name: String,
    /// YAML (or JSON).
    pub text: String,
}

impl Layer {
    /// The embedded defaults.
    #[must_use]
    pub fn defaults() -> Self {
        Self {
            name: DEFAULTS_NAME.into(),
            text: DEFAULTS.into(),
        }
    }

    /// A layer from text.
    #[must_use]
    pub fn text(name: &str, text: &str) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// A file, read up to [`MAX_CONFIG_BYTES`]; `-` is standard input.
    ///
    /// # Errors
    /// It cannot be read, is too large or is not UTF-8.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let error = |message: String| ConfigError::new(&name, None, message);
        let mut bytes = Vec::new();
        let result = if path == Path::new("-") {
            std::io::stdin()
                .take(MAX_CONFIG_BYTES + 1)
                .read_to_end(&mut bytes)
        } else {
            std::fs::File::open(path)
                .and_then(|file| file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
        };
        result.map_err(|e| error(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(error(format!(
                "larger than {} KiB: is this a forward configuration?",
                MAX_CONFIG_BYTES / 1024
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            error(format!(
                "not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Ok(Self { name, text })
    }
}

/// The layers a command reads: the embedded defaults, the user's file when it exists (unless
/// `user` is false), then `files` in order.
///
/// # Errors
/// A file that cannot be read (the user's file only when it exists).
pub fn layers(user: bool, files: &[PathBuf]) -> Result<Vec<Layer>, ConfigError> {
    let mut found = vec![Layer::defaults()];
    if user
        && let Some(path) = user_config_path()
        && path.exists()
    {
        found.push(Layer::read(&path)?);
    }
    for file in files {
        found.push(Layer::read(file)?);
    }
    Ok(found)
}

/// Reads and merges the layers a command names: see [`layers`] and [`merge`].
///
/// # Errors
/// As [`layers`] and [`merge`].
pub fn load(user: bool, files: &[PathBuf]) -> Result<Config, ConfigError> {
    merge(&layers(user, files)?)
}

/// An entry's fields as the layers set them, each with the layer that set it last.
#[derive(Default)]
struct Partial {
    target: Option<(Target, usize)>,
    namespace: Option<(Option<String>, usize)>,
    target_port: Option<(PortRef, usize)>,
    local_port: Option<(Option<u16>, usize)>,
    kind: Option<(EntryType, usize)>,
    disabled: Option<(bool, usize)>,
    sources: Vec<usize>,
}

/// Merges `layers` in order, field by field: a later layer's field replaces an earlier one's;
/// an entry is named by its key, so a later file can change one field of an earlier entry
/// (`disabled: true`, say). Then checks the whole: every entry has a target and a port.
///
/// # Errors
/// The first problem found, with its file and field.
pub fn merge(layers: &[Layer]) -> Result<Config, ConfigError> {
    let mut partials: BTreeMap<String, Partial> = BTreeMap::new();
    let mut settings = PartialSettings::default();
    for (index, layer) in layers.iter().enumerate() {
        let file = layer.name.as_str();
        let document = parse(layer)?;
        let Json::Object(top) = document else {
            if document.is_null() {
                continue;
            }
            return Err(ConfigError::new(
                file,
                None,
                "the configuration must be a mapping with `portForwards` and settings",
            ));
        };
        for (key, value) in top {
            if key != "portForwards" {
                settings.read(file, &key, &value)?;
                continue;
            }
            let entries = match value {
                Json::Object(entries) => entries,
                Json::Null => Map::new(),
                other => {
                    return Err(ConfigError::new(
                        file,
                        Some(key),
                        format!(
                            "must be a mapping of entry name to entry, not {}",
                            describe(&other)
                        ),
                    ));
                }
            };
            for (name, entry) in entries {
                let partial = partials.entry(name.clone()).or_default();
                read_entry(file, index, &name, entry, partial)?;
                if partials.len() > MAX_ENTRIES {
                    return Err(ConfigError::new(
                        file,
                        Some("portForwards".into()),
                        format!("more than {MAX_ENTRIES} entries"),
                    ));
                }
            }
        }
    }
    let settings = settings.finish(layers)?;
    let entries = partials
        .into_iter()
        .map(|(name, partial)| finish(layers, name, partial))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Config {
        entries,
        settings,
        layers: layers.iter().map(|l| l.name.clone()).collect(),
    })
}

/// The settings as the layers set them.
#[derive(Default)]
struct PartialSettings {
    local_ports: Option<(u16, u16)>,
    port_check_ttl: Option<Duration>,
    /// Each with the file that set it.
    backoff_initial: Option<(Duration, String)>,
    backoff_max: Option<(Duration, String)>,
}

impl PartialSettings {
    fn read(&mut self, file: &str, key: &str, value: &Json) -> Result<(), ConfigError> {
        match key {
            "localPorts" => self.local_ports = Some(port_range(file, key, value)?),
            "portCheckTTL" => self.port_check_ttl = Some(duration(file, key, value)?),
            "backoff" => {
                let Json::Object(backoff) = value else {
                    return Err(ConfigError::new(
                        file,
                        Some(key.into()),
                        "must be a mapping with `initial` and `max`",
                    ));
                };
                for (name, value) in backoff {
                    let path = format!("backoff.{name}");
                    match name.as_str() {
                        "initial" => {
                            self.backoff_initial =
                                Some((duration(file, &path, value)?, file.into()));
                        }
                        "max" => {
                            self.backoff_max = Some((duration(file, &path, value)?, file.into()));
                        }
                        _ => {
                            return Err(ConfigError::new(
                                file,
                                Some(path),
                                "unknown field: the fields are initial and max",
                            ));
                        }
                    }
                }
            }
            // kportforward's settings, accepted so that its files load; not used.
            "monitoringInterval" | "uiOptions" => {}
            _ => {
                return Err(ConfigError::new(
                    file,
                    Some(key.into()),
                    "unknown field: the fields are portForwards, localPorts, portCheckTTL and backoff",
                ));
            }
        }
        Ok(())
    }

    fn finish(self, layers: &[Layer]) -> Result<Settings, ConfigError> {
        let defaults = || ConfigError::new(DEFAULTS_NAME, None, "incomplete embedded defaults");
        let (initial, initial_file) = self.backoff_initial.ok_or_else(defaults)?;
        let (max, max_file) = self.backoff_max.ok_or_else(defaults)?;
        let settings = Settings {
            local_ports: self.local_ports.ok_or_else(defaults)?,
            port_check_ttl: self.port_check_ttl.ok_or_else(defaults)?,
            backoff_initial: initial,
            backoff_max: max,
        };
        if initial.is_zero() || initial > max {
            // A zero initial wait is its own file's fault; otherwise the file that set the later
            // of the two made the pair wrong.
            let position = |file: &str| layers.iter().rposition(|l| l.name == file);
            let file = if initial.is_zero() || position(&initial_file) >= position(&max_file) {
                initial_file
            } else {
                max_file
            };
            return Err(ConfigError::new(
                &file,
                Some("backoff".into()),
                format!(
                    "initial ({}) must be above zero and at most max ({})",
                    format_duration(settings.backoff_initial),
                    format_duration(settings.backoff_max)
                ),
            ));
        }
        Ok(settings)
    }
}

fn parse(layer: &Layer) -> Result<Json, ConfigError> {
    use serde::Deserialize as _;
    let mut documents = serde_norway::Deserializer::from_str(&layer.text);
    let Some(first) = documents.next() else {
        return Ok(Json::Null);
    };
    let value = Json::deserialize(first)
        .map_err(|e| ConfigError::new(&layer.name, None, format!("not YAML: {e}")))?;
    if documents.next().is_some() {
        return Err(ConfigError::new(
            &layer.name,
            None,
            "more than one YAML document: a forward configuration is one",
        ));
    }
    Ok(value)
}

fn read_entry(
    file: &str,
    layer: usize,
    name: &str,
    entry: Json,
    partial: &mut Partial,
) -> Result<(), ConfigError> {
    let at = |field: &str| {
        Some(if field.is_empty() {
            format!("portForwards.{name}")
        } else {
            format!("portForwards.{name}.{field}")
        })
    };
    if !is_entry_name(name) {
        return Err(ConfigError::new(
            file,
            at(""),
            "an entry name is 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit",
        ));
    }
    let Json::Object(fields) = entry else {
        return Err(ConfigError::new(
            file,
            at(""),
            format!(
                "an entry must be a mapping (target, namespace, targetPort, ...), not {}",
                describe(&entry)
            ),
        ));
    };
    partial.sources.push(layer);
    for (key, value) in fields {
        let bad = |message: String| ConfigError::new(file, at(&key), message);
        match key.as_str() {
            "target" => {
                let text = value.as_str().ok_or_else(|| {
                    bad(format!(
                        "must be text such as svc/NAME, not {}",
                        describe(&value)
                    ))
                })?;
                partial.target = Some((text.parse().map_err(bad)?, layer));
            }
            "namespace" => {
                let namespace = match &value {
                    Json::Null => None,
                    Json::String(text) if is_dns_label(text) => Some(text.clone()),
                    _ => {
                        return Err(bad(format!(
                            "{} is not a namespace name (lowercase letters, digits and '-', at most 63)",
                            describe(&value)
                        )));
                    }
                };
                partial.namespace = Some((namespace, layer));
            }
            "targetPort" => partial.target_port = Some((port_ref(&value).map_err(bad)?, layer)),
            "localPort" => {
                let port = match &value {
                    Json::Null => None,
                    other => Some(port_number(other).map_err(|m| {
                        bad(format!("{m}; leave localPort out for an automatic port"))
                    })?),
                };
                partial.local_port = Some((port, layer));
            }
            "type" => {
                let kind = value.as_str().and_then(EntryType::parse).ok_or_else(|| {
                    bad(format!(
                        "{} is not a type: write rest, rpc, web or other",
                        describe(&value)
                    ))
                })?;
                partial.kind = Some((kind, layer));
            }
            "disabled" => {
                let disabled = value.as_bool().ok_or_else(|| {
                    bad(format!("must be true or false, not {}", describe(&value)))
                })?;
                partial.disabled = Some((disabled, layer));
            }
            // kportforward's UI fields, accepted so that its files load; not used.
            "swaggerPath" | "apiPath" => {}
            _ => {
                return Err(bad(
                    "unknown field: the fields are target, namespace, targetPort, localPort, type and disabled"
                        .into(),
                ));
            }
        }
    }
    Ok(())
}

fn finish(layers: &[Layer], name: String, partial: Partial) -> Result<Entry, ConfigError> {
    let last = partial.sources.last().copied().unwrap_or_default();
    let file_of = |layer: usize| layers[layer].name.clone();
    let missing = |field: &str, what: &str| ConfigError {
        file: file_of(last),
        field: Some(format!("portForwards.{name}.{field}")),
        message: format!("missing: {what}"),
    };
    let target = partial
        .target
        .ok_or_else(|| missing("target", "write svc/NAME, pod/NAME or deploy/NAME"))?
        .0;
    let target_port = partial
        .target_port
        .ok_or_else(|| missing("targetPort", "the target's port, a number or a name"))?
        .0;
    let mut sources: Vec<String> = Vec::new();
    for layer in partial.sources {
        let file = file_of(layer);
        if !sources.contains(&file) {
            sources.push(file);
        }
    }
    Ok(Entry {
        name,
        target,
        namespace: partial.namespace.and_then(|(namespace, _)| namespace),
        target_port,
        local_port: partial.local_port.and_then(|(port, _)| port),
        kind: partial.kind.map(|(kind, _)| kind).unwrap_or_default(),
        disabled: partial.disabled.is_some_and(|(disabled, _)| disabled),
        sources,
    })
}

fn describe(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => {
            let mut shown: String = s.chars().take(40).collect();
            if shown.len() < s.len() {
                shown.push('…');
            }
            format!("{shown:?}")
        }
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "a mapping".into(),
    }
}

fn port_number(value: &Json) -> Result<u16, String> {
    value
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{} is not a port number from 1 to 65535", describe(value)))
}

fn port_ref(value: &Json) -> Result<PortRef, String> {
    match value {
        Json::String(text) => match text.parse::<u64>() {
            Ok(number) => port_number(&Json::from(number)).map(PortRef::Number),
            Err(_) if is_port_name(text) => Ok(PortRef::Name(text.clone())),
            Err(_) => Err(format!(
                "{} is neither a port number (1 to 65535) nor a port name (1 to 15 lowercase letters, digits and '-', with a letter)",
                describe(value)
            )),
        },
        other => port_number(other).map(PortRef::Number),
    }
}

fn port_range(file: &str, key: &str, value: &Json) -> Result<(u16, u16), ConfigError> {
    let bad = || {
        ConfigError::new(
            file,
            Some(key.into()),
            format!(
                "{} is not a port range such as 50000-59999",
                describe(value)
            ),
        )
    };
    let text = value.as_str().ok_or_else(bad)?;
    let (low, high) = text.split_once('-').ok_or_else(bad)?;
    let low: u16 = low.trim().parse().map_err(|_| bad())?;
    let high: u16 = high.trim().parse().map_err(|_| bad())?;
    if low == 0 || low > high {
        return Err(bad());
    }
    Ok((low, high))
}

fn duration(file: &str, key: &str, value: &Json) -> Result<Duration, ConfigError> {
    let bad = |why: String| ConfigError::new(file, Some(key.into()), why);
    let text = value
        .as_str()
        .ok_or_else(|| bad(format!("{} is not a duration such as 5s", describe(value))))?;
    let parsed = crate::lead::select::parse_duration(text)
        .map_err(|e| bad(format!("{e}: write a duration such as 250ms, 5s or 1m")))?;
    if parsed > Duration::from_secs(24 * 3600) {
        return Err(bad(format!("{text} is more than a day")));
    }
    Ok(parsed)
}

fn is_entry_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_dns_label(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && !text.starts_with('-')
        && !text.ends_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_dns_subdomain(text: &str) -> bool {
    (1..=253).contains(&text.len()) && text.split('.').all(is_dns_label)
}

/// Kubernetes' `IANA_SVC_NAME`: 1 to 15 lowercase letters, digits and '-', with at least one
/// letter, not starting or ending with '-', without "--".
fn is_port_name(text: &str) -> bool {
    (1..=15).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && text.chars().any(|c| c.is_ascii_lowercase())
        && !text.starts_with('-')
        && !text.ends_with('-')
        && !text.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(files: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut layers = vec![Layer::defaults()];
        layers.extend(files.iter().map(|(name, text)| Layer::text(name, text)));
        merge(&layers)
    }

    #[test]
    fn the_defaults_alone_are_a_configuration_without_entries() {
        let config = merged(&[]).unwrap();
        assert!(config.entries.is_empty());
        assert_eq!(config.settings.local_ports, (50000, 59999));
        assert_eq!(config.settings.port_check_ttl, Duration::from_secs(5));
        assert_eq!(config.layers, vec![DEFAULTS_NAME.to_owned()]);
    }

    #[test]
    fn later_files_change_single_fields_of_earlier_entries() {
        let user = "portForwards:\n  api: {target: svc/api, namespace: shop, targetPort: http, localPort: 8080, type: rest}\n  ui: {target: deploy/ui, targetPort: 3000}\nportCheckTTL: 2s\n";
        let extra = "portForwards:\n  api: {disabled: true}\n  db: {target: pod/db-0, targetPort: '5432'}\n";
        let config = merged(&[("user.yaml", user), ("extra.yaml", extra)]).unwrap();
        let names: Vec<&str> = config.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["api", "db", "ui"]);
        let api = &config.entries[0];
        assert!(api.disabled);
        assert_eq!(api.local_port, Some(8080));
        assert_eq!(api.target_port, PortRef::Name("http".into()));
        assert_eq!(api.kind, EntryType::Rest);
        assert_eq!(api.namespace.as_deref(), Some("shop"));
        assert_eq!(api.sources, ["user.yaml", "extra.yaml"]);
        assert_eq!(config.entries[1].target_port, PortRef::Number(5432));
        assert_eq!(config.entries[2].target.to_string(), "deploy/ui");
        assert_eq!(config.entries[2].namespace, None);
        assert_eq!(config.settings.port_check_ttl, Duration::from_secs(2));
    }

    #[test]
    fn kportforward_files_load() {
        let file = "portForwards:\n  flyte-console:\n    target: \"service/flyteconsole\"\n    targetPort: 80\n    localPort: 8088\n    namespace: \"flyte\"\n    type: \"web\"\n    swaggerPath: x\nmonitoringInterval: 1s\nuiOptions:\n  refreshRate: 100ms\n";
        let config = merged(&[("kpf.yaml", file)]).unwrap();
        assert_eq!(config.entries[0].target.to_string(), "svc/flyteconsole");
        assert_eq!(config.entries[0].kind, EntryType::Web);
    }

    #[test]
    fn every_error_names_the_file_the_entry_and_the_field() {
        let cases = [
            (
                "portForwards:\n  api: {target: svc/api, targetPort: 70000}\n",
                "portForwards.api.targetPort",
                "70000 is not a port number",
            ),
            (
                "portForwards:\n  api: {target: svc/api, targetPort: 'Http!'}\n",
                "portForwards.api.targetPort",
                "neither a port number",
            ),
            (
                "portForwards:\n  api: {target: svc/api, targetPort: 80, localPort: 0}\n",
                "portForwards.api.localPort",
                "leave localPort out",
            ),
            (
                "portForwards:\n  api: {target: job/x, targetPort: 80}\n",
                "portForwards.api.target",
                "not a kind",
            ),
            (
                "portForwards:\n  api: {target: svc/API, targetPort: 80}\n",
                "portForwards.api.target",
                "not an object name",
            ),
            (
                "portForwards:\n  api: {target: svc/api, targetPort: 80, type: grpc}\n",
                "portForwards.api.type",
                "rest, rpc, web or other",
            ),
            (
                "portForwards:\n  api: {target: svc/api, targetPort: 80, disabled: 'no'}\n",
                "portForwards.api.disabled",
                "true or false",
            ),
            (
                "portForwards:\n  api: {target: svc/api, targetPort: 80, namespace: Shop}\n",
                "portForwards.api.namespace",
                "not a namespace",
            ),
            (
                "portForwards:\n  api: {target: svc/api, targetPort: 80, localport: 1}\n",
                "portForwards.api.localport",
                "unknown field",
            ),
            (
                "portForwards:\n  api: {targetPort: 80}\n",
                "portForwards.api.target",
                "missing",
            ),
            (
                "portForwards:\n  api: {target: svc/api}\n",
                "portForwards.api.targetPort",
                "missing",
            ),
            (
                "portForwards:\n  api: 8080\n",
                "portForwards.api",
                "must be a mapping",
            ),
            (
                "portForwards:\n  'a b': {target: svc/api, targetPort: 80}\n",
                "portForwards.a b",
                "entry name",
            ),
            (
                "portForwards: [1]\n",
                "portForwards",
                "mapping of entry name",
            ),
            ("localPorts: 6000-5000\n", "localPorts", "port range"),
            ("portCheckTTL: soon\n", "portCheckTTL", "duration"),
            (
                "backoff: {initial: 1m, max: 1s}\n",
                "backoff",
                "at most max",
            ),
            ("backoff: {min: 1s}\n", "backoff.min", "unknown field"),
            ("portforwards: {}\n", "portforwards", "unknown field"),
        ];
        for (text, field, message) in cases {
            let error = merged(&[("bad.yaml", text)]).unwrap_err();
            assert_eq!(error.file, "bad.yaml", "{text}");
            assert_eq!(error.field.as_deref(), Some(field), "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("bad.yaml: {field}: "))
            );
        }
    }

    #[test]
    fn malformed_and_hostile_files_are_refused_with_their_name() {
        for text in [
            "portForwards: {api: [",
            "- a\n- b\n",
            "a: 1\n---\nb: 2\n",
            "a: &x [*x]\n",
            &"[".repeat(10_000),
        ] {
            let error = merged(&[("bad.yaml", text)]).unwrap_err();
            assert_eq!(error.file, "bad.yaml", "{error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(
            &big,
            vec![b'#'; usize::try_from(MAX_CONFIG_BYTES).unwrap() + 1],
        )
        .unwrap();
        assert!(
            Layer::read(&big)
                .unwrap_err()
                .message
                .contains("larger than")
        );
        let missing = Layer::read(&dir.path().join("none.yaml")).unwrap_err();
        assert!(missing.message.contains("cannot read"), "{missing}");
        let empty = merged(&[("empty.yaml", "")]).unwrap();
        assert!(empty.entries.is_empty());
    }

    #[test]
    fn the_shown_document_reads_back_as_the_same_configuration() {
        let user = "portForwards:\n  api: {target: service/api, namespace: shop, targetPort: http, localPort: 8080, type: rest}\n  ui: {target: deploy/ui, targetPort: 3000, disabled: true}\nbackoff: {initial: 100ms, max: 1m30s}\n";
        let config = merged(&[("user.yaml", user)]).unwrap();
        let shown = serde_norway::to_string(&config.to_document()).unwrap();
        let again = merged(&[("shown.yaml", &shown)]).unwrap();
        assert_eq!(again.entries.len(), 2);
        for (a, b) in config.entries.iter().zip(&again.entries) {
            assert_eq!(
                (
                    &a.name,
                    &a.target,
                    &a.namespace,
                    &a.target_port,
                    a.local_port,
                    a.kind,
                    a.disabled
                ),
                (
                    &b.name,
                    &b.target,
                    &b.namespace,
                    &b.target_port,
                    b.local_port,
                    b.kind,
                    b.disabled
                )
            );
        }
        assert_eq!(config.settings, again.settings);
    }

    #[test]
    fn a_wrong_backoff_is_blamed_on_the_file_that_made_it_wrong() {
        let error = merged(&[
            ("a.yaml", "backoff: {initial: 1m}\n"),
            ("b.yaml", "portCheckTTL: 1s\n"),
        ])
        .unwrap_err();
        assert_eq!(
            (error.file.as_str(), error.field.as_deref()),
            ("a.yaml", Some("backoff"))
        );
        let error = merged(&[
            ("a.yaml", "backoff: {initial: 10s}\n"),
            ("b.yaml", "backoff: {max: 1s}\n"),
        ])
        .unwrap_err();
        assert_eq!(error.file, "b.yaml");
        let error = merged(&[
            ("a.yaml", "backoff: {initial: 0s}\n"),
            ("b.yaml", "backoff: {max: 1m}\n"),
        ])
        .unwrap_err();
        assert_eq!(error.file, "a.yaml");
    }

    #[test]
    fn too_many_entries_are_refused() {
        use std::fmt::Write as _;
        let mut text = String::from("portForwards:\n");
        for i in 0..=MAX_ENTRIES {
            writeln!(text, "  e{i}: {{target: svc/a, targetPort: 80}}").unwrap();
        }
        let error = merged(&[("huge.yaml", &text)]).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("portForwards"));
        assert!(error.message.contains("more than 10000 entries"), "{error}");
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    }
}
