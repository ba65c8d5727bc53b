//! The heap a language runtime is told to use, read from a container's command, arguments and
//! environment: a JVM's `-Xmx` or `-XX:MaxRAMPercentage`, Go's `GOMEMLIMIT`, Node's
//! `--max-old-space-size`. A memory limit below the heap gets the container OOM-killed before
//! its runtime ever collects garbage in earnest.

use k8s_openapi::api::core::v1::Container;
use serde::{Deserialize, Serialize};

use crate::quantity::MIB;

/// Environment variables a heap is configured by: kept when snapshots drop the values of
/// all others.
pub(crate) const HEAP_VARIABLES: &[&str] = &[
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "JAVA_OPTS",
    "_JAVA_OPTIONS",
    "NODE_OPTIONS",
    "GOMEMLIMIT",
];

/// A language runtime with a configured heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// The Java virtual machine.
    Jvm,
    /// Go (`GOMEMLIMIT`).
    Go,
    /// Node.js (V8's old space).
    Node,
}

/// A configured heap: a size, or (JVM) a share of the container's memory limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heap {
    /// Which runtime.
    pub runtime: Runtime,
    /// The heap size in bytes, when given as a size.
    pub bytes: Option<f64>,
    /// The heap as a percentage of the memory limit (`-XX:MaxRAMPercentage`).
    pub percent: Option<f64>,
    /// Where it was read: the option as written.
    pub setting: String,
}

impl Heap {
    /// The heap a container's runtime is configured with, if any, read in the order each
    /// runtime reads its settings (a later one wins): the JVM takes `JAVA_TOOL_OPTIONS` and
    /// `JDK_JAVA_OPTIONS`, then the command line (scripts pass `JAVA_OPTS` on it), then
    /// `_JAVA_OPTIONS`, and any `-Xmx` wins over `-XX:MaxRAMPercentage`; Node takes
    /// `NODE_OPTIONS`, then its command line; Go, `GOMEMLIMIT`.
    #[must_use]
    pub fn of(container: &Container) -> Option<Self> {
        let env = |name: &'static str| {
            container
                .env
                .iter()
                .flatten()
                .filter(move |v| v.name == name)
                .filter_map(|v| v.value.as_deref())
                .flat_map(str::split_whitespace)
        };
        let command_line = container
            .command
            .iter()
            .flatten()
            .chain(container.args.iter().flatten())
            .flat_map(|arg| arg.split_whitespace());
        let jvm_words = env("JAVA_TOOL_OPTIONS")
            .chain(env("JDK_JAVA_OPTIONS"))
            .chain(env("JAVA_OPTS"))
            .chain(command_line.clone())
            .chain(env("_JAVA_OPTIONS"));
        let (mut size, mut share) = (None, None);
        for heap in jvm_words.filter_map(jvm_option) {
            if heap.bytes.is_some() {
                size = Some(heap);
            } else {
                share = Some(heap);
            }
        }
        let node = env("NODE_OPTIONS")
            .chain(command_line)
            .filter_map(node_option)
            .next_back();
        let go = container
            .env
            .iter()
            .flatten()
            .filter(|v| v.name == "GOMEMLIMIT")
            .filter_map(|v| v.value.as_deref())
            .filter_map(|value| {
                go_limit(value).map(|bytes| Self {
                    runtime: Runtime::Go,
                    bytes: Some(bytes),
                    percent: None,
                    setting: format!("GOMEMLIMIT={value}"),
                })
            })
            .next_back();
        size.or(share).or(node).or(go)
    }

    /// The heap in bytes under a memory limit: the size, or the share of the limit.
    #[must_use]
    pub fn bytes_under(&self, limit: Option<f64>) -> Option<f64> {
        self.bytes.or_else(|| Some(limit? * self.percent? / 100.0))
    }
}

/// `-Xmx512m`, `-Xmx2g`, `-XX:MaxRAMPercentage=75.0`.
fn jvm_option(word: &str) -> Option<Heap> {
    if let Some(size) = word.strip_prefix("-Xmx") {
        let (number, unit) = size.split_at(
            size.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(size.len()),
        );
        let factor = match unit.to_ascii_lowercase().as_str() {
            "" => 1.0,
            "k" => 1024.0,
            "m" => MIB,
            "g" => 1024.0 * MIB,
            "t" => 1024.0 * 1024.0 * MIB,
            _ => return None,
        };
        return Some(Heap {
            runtime: Runtime::Jvm,
            bytes: Some(number.parse::<f64>().ok()? * factor),
            percent: None,
            setting: word.to_owned(),
        });
    }
    let percent = word
        .strip_prefix("-XX:MaxRAMPercentage=")?
        .parse::<f64>()
        .ok()?;
    Some(Heap {
        runtime: Runtime::Jvm,
        bytes: None,
        percent: Some(percent),
        setting: word.to_owned(),
    })
}

/// `--max-old-space-size=4096` (mebibytes).
fn node_option(word: &str) -> Option<Heap> {
    let megabytes = word
        .strip_prefix("--max-old-space-size=")
        .or_else(|| word.strip_prefix("--max_old_space_size="))?
        .parse::<f64>()
        .ok()?;
    Some(Heap {
        runtime: Runtime::Node,
        bytes: Some(megabytes * MIB),
        percent: None,
        setting: word.to_owned(),
    })
}

/// `GOMEMLIMIT`: a number of bytes with an optional `B`, `KiB`, `MiB`, `GiB` or `TiB`
/// suffix; `off` is no limit.
fn go_limit(value: &str) -> Option<f64> {
    let value = value.trim();
    let units = [
        ("TiB", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("GiB", 1024.0 * MIB),
        ("MiB", MIB),
        ("KiB", 1024.0),
        ("B", 1.0),
    ];
    let (number, factor) = units
        .iter()
        .find_map(|(unit, factor)| value.strip_suffix(unit).map(|n| (n, *factor)))
        .unwrap_or((value, 1.0));
    let bytes = number.parse::<f64>().ok()? * factor;
    (bytes.is_finite() && bytes > 0.0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn heap(container: serde_json::Value) -> Option<Heap> {
        Heap::of(&serde_json::from_value(container).unwrap())
    }

    #[test]
    fn heaps_are_read_from_arguments_and_environment() {
        let jvm =
            heap(json!({"name": "a", "args": ["java", "-Xms256m", "-Xmx2g", "-jar", "app.jar"]}))
                .unwrap();
        assert_eq!((jvm.runtime, jvm.bytes), (Runtime::Jvm, Some(2048.0 * MIB)));
        let percent = heap(json!({"name": "a", "env": [{"name": "JAVA_TOOL_OPTIONS", "value": "-XX:+UseG1GC -XX:MaxRAMPercentage=75.0"}]})).unwrap();
        assert_eq!(percent.percent, Some(75.0));
        assert_eq!(percent.bytes_under(Some(1000.0)), Some(750.0));
        let go =
            heap(json!({"name": "a", "env": [{"name": "GOMEMLIMIT", "value": "512MiB"}]})).unwrap();
        assert_eq!((go.runtime, go.bytes), (Runtime::Go, Some(512.0 * MIB)));
        let node = heap(
            json!({"name": "a", "command": ["node", "--max-old-space-size=4096", "server.js"]}),
        )
        .unwrap();
        assert_eq!(
            (node.runtime, node.bytes),
            (Runtime::Node, Some(4096.0 * MIB))
        );
        let node_env = heap(json!({"name": "a", "env": [{"name": "NODE_OPTIONS", "value": "--max-old-space-size=1024"}]})).unwrap();
        assert_eq!(node_env.bytes, Some(1024.0 * MIB));
        assert_eq!(
            heap(json!({"name": "a", "env": [{"name": "GOMEMLIMIT", "value": "off"}]})),
            None
        );
        assert_eq!(heap(json!({"name": "a", "args": ["-Xmxlots"]})), None);
        assert_eq!(heap(json!({"name": "a"})), None);
        // The command line wins over JAVA_TOOL_OPTIONS, _JAVA_OPTIONS over both, and a size
        // over a share whatever the order.
        let tool = json!([{"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx512m"}]);
        let over = heap(json!({"name": "a", "args": ["-Xmx4g"], "env": tool})).unwrap();
        assert_eq!(over.bytes, Some(4096.0 * MIB));
        let last = json!([{"name": "_JAVA_OPTIONS", "value": "-Xmx1g"}, {"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx512m"}]);
        let under = heap(json!({"name": "a", "args": ["-Xmx4g"], "env": last})).unwrap();
        assert_eq!(under.bytes, Some(1024.0 * MIB));
        let both =
            heap(json!({"name": "a", "args": ["-Xmx2g", "-XX:MaxRAMPercentage=75"]})).unwrap();
        assert_eq!((both.bytes, both.percent), (Some(2048.0 * MIB), None));
    }
}
