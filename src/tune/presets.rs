//! Sizing tables from the guides: workload presets (Nixernetes' sizing guidelines), gateway
//! sizing (netweave's replica, load-level, Redis pool and cache TTL tables) and controller
//! client settings (netweave's QPS/burst tiers by cluster size, zen-lead's per-namespace
//! cache). Each table is data here, so docs, tests and both faces read the same numbers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::model::Resources;
use crate::quantity::{GIB, MIB};
use crate::table::{Cell, Column, Table, Tabular};

/// The annotation that picks a workload's preset: `tune.kubezen.io/profile: web-api`.
pub const PROFILE_ANNOTATION: &str = "tune.kubezen.io/profile";

/// A workload type with a preset size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// An HTTP/gRPC API: 100m/500m CPU, 128Mi/512Mi memory.
    WebApi,
    /// CPU-bound work: 500m/2 CPU, 512Mi/2Gi.
    HeavyCompute,
    /// Queue workers, batch: 50m/200m, 64Mi/256Mi.
    BackgroundJob,
    /// A database: 500m/4 CPU, 1Gi/4Gi.
    Database,
    /// An in-memory cache such as Redis: 100m/1 CPU, 256Mi/2Gi.
    Cache,
}

impl Profile {
    /// Every profile, in the guide's order.
    pub const ALL: [Self; 5] = [
        Self::WebApi,
        Self::HeavyCompute,
        Self::BackgroundJob,
        Self::Database,
        Self::Cache,
    ];

    /// The profile's name, as flags and annotations write it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebApi => "web-api",
            Self::HeavyCompute => "heavy-compute",
            Self::BackgroundJob => "background-job",
            Self::Database => "database",
            Self::Cache => "cache",
        }
    }

    /// The preset requests and limits (Nixernetes, `docs/PERFORMANCE_TUNING.md`, "Sizing
    /// Guidelines"), CPU in millicores and memory in bytes.
    #[must_use]
    pub fn resources(self) -> Resources {
        let (cpu_request, cpu_limit, memory_request, memory_limit) = match self {
            Self::WebApi => (100.0, 500.0, 128.0 * MIB, 512.0 * MIB),
            Self::HeavyCompute => (500.0, 2000.0, 512.0 * MIB, 2.0 * GIB),
            Self::BackgroundJob => (50.0, 200.0, 64.0 * MIB, 256.0 * MIB),
            Self::Database => (500.0, 4000.0, GIB, 4.0 * GIB),
            Self::Cache => (100.0, 1000.0, 256.0 * MIB, 2.0 * GIB),
        };
        Resources {
            cpu_request: Some(cpu_request),
            cpu_limit: Some(cpu_limit),
            memory_request: Some(memory_request),
            memory_limit: Some(memory_limit),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == text.trim())
            .ok_or_else(|| {
                format!(
                    "unknown profile {text:?}: use one of {}",
                    Self::ALL.map(Profile::as_str).join(", ")
                )
            })
    }
}

/// One setting with the value advised and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// The setting, as a flag or config key.
    pub name: String,
    /// The advised value.
    pub value: String,
    /// Why, and where the number comes from.
    pub why: String,
}

fn setting(name: &str, value: &dyn fmt::Display, why: impl Into<String>) -> Setting {
    Setting {
        name: name.to_owned(),
        value: value.to_string(),
        why: why.into(),
    }
}

/// What a controller's client and caches should be set to, from the cluster's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerAdvice {
    /// Objects of the watched kinds.
    pub objects: u64,
    /// The most objects of those kinds in one namespace.
    pub largest_namespace: u64,
    /// Mean size of one object as JSON, bytes.
    pub mean_object_bytes: u64,
    /// CPU cores the controller has.
    pub cores: u32,
    /// The settings.
    pub settings: Vec<Setting>,
}

/// What a controller's size is measured as: object counts and sizes, and cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ControllerLoad {
    /// Objects of the kinds it watches.
    pub objects: u64,
    /// The most objects in one namespace.
    pub largest_namespace: u64,
    /// Mean object size as JSON, bytes (0: unknown; 4 KiB is assumed).
    pub mean_object_bytes: u64,
    /// CPU cores it runs with.
    pub cores: u32,
}

/// Assumed mean object size when none was measured.
const DEFAULT_OBJECT_BYTES: u64 = 4096;

/// Worker count for `cores`: one per core up to 4, then one per two cores, at most 8 (work
/// per object is mostly waiting on the API server; past 4 to 8 workers the rate limiter, not
/// the CPU, is the bound).
#[must_use]
pub fn workers_for(cores: u32) -> u32 {
    let cores = cores.max(1);
    if cores <= 4 {
        cores
    } else {
        (4 + (cores - 4) / 2).min(8)
    }
}

/// Advice for a controller watching `load`.
#[must_use]
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub fn controller(load: ControllerLoad) -> ControllerAdvice {
    let objects = load.objects;
    let (qps, burst, tier) = match objects {
        0..1_000 => (50, 100, "under 1,000 objects"),
        1_000..=10_000 => (100, 200, "1,000 to 10,000 objects"),
        _ => (200, 400, "over 10,000 objects"),
    };
    let size = if load.mean_object_bytes == 0 {
        DEFAULT_OBJECT_BYTES
    } else {
        load.mean_object_bytes
    };
    // Decoded objects take about twice their JSON size in an informer's store (maps, strings
    // and interning overheads); the estimate rounds up to whole MiB.
    let cache_bytes = objects.saturating_mul(size).saturating_mul(2);
    let cache_mib = (cache_bytes as f64 / MIB).ceil().max(1.0) as u64;
    let resync = match objects {
        0..1_000 => "10m",
        1_000..=10_000 => "30m",
        _ => "1h",
    };
    let per_namespace =
        ((load.largest_namespace as f64 * 1.25 / 100.0).ceil() as u64 * 100).max(1000);
    let workers = workers_for(load.cores);
    ControllerAdvice {
        objects,
        largest_namespace: load.largest_namespace,
        mean_object_bytes: size,
        cores: load.cores.max(1),
        settings: vec![
            setting(
                "--qps",
                &qps,
                format!("{tier}: netweave's client tier {qps}/{burst}"),
            ),
            setting(
                "--burst",
                &burst,
                "twice the QPS: lets a resync or a restart's initial lists through without queueing",
            ),
            setting(
                "--workers",
                &&workers,
                format!(
                    "{} cores: one worker a core up to 4, then one per two cores, at most 8 (reconciles wait on the API server; the rate limit, not CPU, bounds them)",
                    load.cores.max(1)
                ),
            ),
            setting(
                "informer cache",
                &format!("{cache_mib}Mi"),
                format!(
                    "{objects} objects x {size} bytes of JSON x 2 (decoded objects are about twice their JSON); set the memory request above this"
                ),
            ),
            setting(
                "--resync",
                &resync,
                "longer periods mean less API load and slower drift detection (netweave: 10m by default); watches deliver changes in between",
            ),
            setting(
                "--max-cache-size-per-namespace",
                &&per_namespace,
                format!(
                    "the largest namespace has {} objects; 25 % headroom, at least zen-lead's default 1000 (about 200 bytes an entry)",
                    load.largest_namespace
                ),
            ),
        ],
    }
}

/// Gateway sizing for a request rate and concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayAdvice {
    /// Requests per second expected.
    pub rps: u64,
    /// Concurrent requests expected.
    pub concurrency: u64,
    /// Fewest replicas advised.
    pub min_replicas: u64,
    /// Most replicas advised.
    pub max_replicas: u64,
    /// The load level (light, medium, heavy, very heavy).
    pub load_level: String,
    /// Per-replica requests and limits for that level.
    pub resources: Resources,
    /// The Redis connection pool size.
    pub redis_pool_size: u64,
    /// Cache TTLs per resource type.
    pub cache_ttls: Vec<Setting>,
    /// Latency targets to hold the gateway to.
    pub targets: Vec<Setting>,
    /// Every setting, with why.
    pub settings: Vec<Setting>,
}

/// Gateway advice for `rps` requests a second with `concurrency` in flight, from the
/// netweave performance guide's tables.
#[must_use]
pub fn gateway(rps: u64, concurrency: u64) -> GatewayAdvice {
    // Replica count guidelines; above 5,000 req/s, one replica per 500-1,000 req/s (the
    // guide's light per-replica throughput).
    let (mut min_replicas, mut max_replicas) = match rps {
        0..=500 => (2, 3),
        501..=2000 => (3, 5),
        2001..=5000 => (5, 10),
        _ => (rps.div_ceil(1000).max(10), rps.div_ceil(500).max(10)),
    };
    // Keep each replica under 2,000 concurrent requests, the guide's limit for best latency.
    let for_concurrency = concurrency.div_ceil(2000);
    min_replicas = min_replicas.max(for_concurrency);
    max_replicas = max_replicas.max(min_replicas);
    let (level, cpu_request, memory_request) = match rps {
        0..100 => ("light", 250.0, 256.0 * MIB),
        100..500 => ("medium", 500.0, 512.0 * MIB),
        500..=1000 => ("heavy", 1000.0, GIB),
        _ => ("very heavy", 2000.0, 2.0 * GIB),
    };
    let resources = Resources {
        cpu_request: Some(cpu_request),
        cpu_limit: Some(cpu_request * 4.0),
        memory_request: Some(memory_request),
        memory_limit: Some(memory_request * 4.0),
    };
    let redis_pool_size = concurrency / 100 + 10;
    let ttl = |name: &str, value: &str, why: &str| setting(name, &value, why);
    let cache_ttls = vec![
        ttl("resource types", "30m", "change rarely"),
        ttl("deployment managers", "10m", "change rarely"),
        ttl("resource pools", "5m", "read-heavy"),
        ttl("resources", "1m", "change often"),
        ttl("subscriptions", "30s", "write-heavy: cache briefly"),
    ];
    let targets = vec![
        ttl("p95 latency", "100ms", "gateway, excluding the backend"),
        ttl("p99 latency", "500ms", "gateway, excluding the backend"),
        ttl("success ratio", "99%", "error rate under 1 %"),
        ttl("cache hit ratio", "90%", "alert below 80 %"),
    ];
    let settings = vec![
        setting(
            "replicas",
            &format!("{min_replicas}-{max_replicas}"),
            format!(
                "{rps} req/s: netweave's replica table; at most 2,000 concurrent requests a replica ({concurrency} in flight)"
            ),
        ),
        setting(
            "resources",
            &format!("{level} load"),
            format!(
                "requests {}m CPU / {}Mi, limits 4x (netweave's {level} row)",
                cpu_request,
                memory_request / MIB
            ),
        ),
        setting(
            "redis pool size",
            &redis_pool_size,
            format!("(concurrency / 100) + 10 = ({concurrency} / 100) + 10"),
        ),
        setting(
            "hpa",
            &format!("cpu 70%, min {min_replicas}, max {max_replicas}"),
            "scale out when CPU stays above 70 %",
        ),
    ];
    GatewayAdvice {
        rps,
        concurrency,
        min_replicas,
        max_replicas,
        load_level: level.to_owned(),
        resources,
        redis_pool_size,
        cache_ttls,
        targets,
        settings,
    }
}

fn settings_table(groups: &[(&str, &[Setting])]) -> Table {
    let mut table = Table::new(vec![
        Column::new("SETTING"),
        Column::new("VALUE"),
        Column::new("WHY"),
    ]);
    for (group, settings) in groups {
        for s in *settings {
            let name = if group.is_empty() {
                s.name.clone()
            } else {
                format!("{group}: {}", s.name)
            };
            table.push_row(vec![
                Cell::from(name),
                Cell::from(s.value.clone()),
                Cell::from(s.why.clone()),
            ]);
        }
    }
    table
}

impl Tabular for ControllerAdvice {
    fn to_table(&self) -> Table {
        settings_table(&[("", &self.settings)])
    }
}

impl Tabular for GatewayAdvice {
    fn to_table(&self) -> Table {
        settings_table(&[
            ("", &self.settings),
            ("cache ttl", &self.cache_ttls),
            ("target", &self.targets),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_tiers_follow_the_object_count() {
        let advice = |objects| {
            let a = controller(ControllerLoad {
                objects,
                largest_namespace: objects / 10,
                mean_object_bytes: 2048,
                cores: 4,
            });
            (a.settings[0].value.clone(), a.settings[1].value.clone())
        };
        assert_eq!(advice(999), ("50".into(), "100".into()));
        assert_eq!(advice(1_000), ("100".into(), "200".into()));
        assert_eq!(advice(10_000), ("100".into(), "200".into()));
        assert_eq!(advice(10_001), ("200".into(), "400".into()));
        let big = controller(ControllerLoad {
            objects: 50_000,
            largest_namespace: 4_000,
            mean_object_bytes: 0,
            cores: 16,
        });
        let value = |name: &str| {
            big.settings
                .iter()
                .find(|s| s.name == name)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(value("informer cache"), "391Mi");
        assert_eq!(value("--max-cache-size-per-namespace"), "5000");
        assert_eq!(value("--workers"), "8");
    }

    #[test]
    fn workers_diminish_past_four_cores() {
        let got: Vec<u32> = [0, 1, 2, 4, 5, 6, 8, 12, 64]
            .into_iter()
            .map(workers_for)
            .collect();
        assert_eq!(got, [1, 1, 2, 4, 4, 5, 6, 8, 8]);
    }

    #[test]
    fn gateway_follows_netweaves_tables() {
        let light = gateway(50, 100);
        assert_eq!(
            (
                light.min_replicas,
                light.max_replicas,
                light.load_level.as_str()
            ),
            (2, 3, "light")
        );
        assert_eq!(light.redis_pool_size, 11);
        let busy = gateway(3000, 10_000);
        assert_eq!((busy.min_replicas, busy.max_replicas), (5, 10));
        assert_eq!(busy.redis_pool_size, 110);
        assert_eq!(busy.resources.cpu_request, Some(2000.0));
        let huge = gateway(20_000, 50_000);
        assert_eq!((huge.min_replicas, huge.max_replicas), (25, 40));
    }

    #[test]
    fn profiles_read_back_and_say_what_exists() {
        for profile in Profile::ALL {
            assert_eq!(profile.as_str().parse::<Profile>(), Ok(profile));
        }
        let error = "webapi".parse::<Profile>().unwrap_err();
        assert!(error.contains("web-api, heavy-compute"), "{error}");
        assert_eq!(Profile::Database.resources().memory_limit, Some(4.0 * GIB));
    }
}
