//! Usage samples, streamed into per-pod sketches and grouped by workload container.
//!
//! A series is one container of one pod, as metrics.k8s.io and Prometheus report usage.
//! Samples fold into the series' [`Sketch`] as they arrive; nothing keeps them. Analysis
//! groups series by workload and container name.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::WorkloadRef;
use super::sketch::Sketch;

/// One series: a container of a pod of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    /// The workload the pod belongs to.
    pub workload: WorkloadRef,
    /// The container's name.
    pub container: String,
    /// The pod's name.
    pub pod: String,
}

/// What one series saw: CPU as a sketch (millicores), memory as its peak (bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesStats {
    /// CPU usage in millicores.
    pub cpu: Sketch,
    /// Memory samples seen.
    pub memory_samples: u64,
    /// The highest memory working set, bytes.
    pub memory_peak: f64,
    /// The first sample's time, seconds since the epoch.
    pub first: i64,
    /// The last sample's time.
    pub last: i64,
}

impl SeriesStats {
    /// Records one sample; a value that is absent, negative or not finite is left out.
    pub(crate) fn record(
        &mut self,
        timestamp: i64,
        cpu_millicores: Option<f64>,
        memory_bytes: Option<f64>,
    ) {
        let valid = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0);
        let (cpu, memory) = (valid(cpu_millicores), valid(memory_bytes));
        if cpu.is_none() && memory.is_none() {
            return;
        }
        self.touch(timestamp);
        if let Some(cpu) = cpu {
            self.cpu.add(cpu);
        }
        if let Some(memory) = memory {
            self.memory_samples += 1;
            self.memory_peak = self.memory_peak.max(memory);
        }
    }

    /// Folds the stats of the same series, seen elsewhere (another part of a file), in.
    pub(crate) fn merge(&mut self, other: &Self) {
        if other.cpu.count() == 0 && other.memory_samples == 0 {
            return;
        }
        if self.cpu.count() == 0 && self.memory_samples == 0 {
            self.first = other.first;
            self.last = other.last;
        } else {
            self.first = self.first.min(other.first);
            self.last = self.last.max(other.last);
        }
        self.cpu.merge(&other.cpu);
        self.memory_samples += other.memory_samples;
        self.memory_peak = self.memory_peak.max(other.memory_peak);
    }

    fn touch(&mut self, timestamp: i64) {
        if self.cpu.count() == 0 && self.memory_samples == 0 {
            self.first = timestamp;
            self.last = timestamp;
        } else {
            self.first = self.first.min(timestamp);
            self.last = self.last.max(timestamp);
        }
    }
}

/// The handle of a series in a [`Usage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SeriesId(u32);

/// Usage of every series seen, in bounded memory: a few hundred bytes a series however many
/// samples it had.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    keys: Vec<SeriesKey>,
    stats: Vec<SeriesStats>,
    index: HashMap<SeriesKey, SeriesId>,
    /// Samples that named no known workload (pods of workloads not in the inventory).
    pub unmatched: u64,
}

impl Usage {
    /// No usage yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The series with this key, added if new.
    ///
    /// # Panics
    /// Past 4 billion series.
    pub fn series(&mut self, key: SeriesKey) -> SeriesId {
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let id = SeriesId(u32::try_from(self.keys.len()).expect("fewer than 2^32 series"));
        self.keys.push(key.clone());
        self.stats.push(SeriesStats::default());
        self.index.insert(key, id);
        id
    }

    /// Records a CPU sample (millicores) of a series at `timestamp` (seconds).
    pub fn record_cpu(&mut self, id: SeriesId, timestamp: i64, millicores: f64) {
        self.stats[id.0 as usize].record(timestamp, Some(millicores), None);
    }

    /// Records a memory sample (bytes) of a series at `timestamp` (seconds).
    pub fn record_memory(&mut self, id: SeriesId, timestamp: i64, bytes: f64) {
        self.stats[id.0 as usize].record(timestamp, None, Some(bytes));
    }

    /// Records a sample of either or both resources.
    pub fn record(
        &mut self,
        id: SeriesId,
        timestamp: i64,
        cpu_millicores: Option<f64>,
        memory_bytes: Option<f64>,
    ) {
        self.stats[id.0 as usize].record(timestamp, cpu_millicores, memory_bytes);
    }

    /// Folds stats of series `id` gathered elsewhere in.
    pub(crate) fn merge(&mut self, id: SeriesId, stats: &SeriesStats) {
        self.stats[id.0 as usize].merge(stats);
    }

    /// The position of a series among all (0 to `len() - 1`).
    #[must_use]
    pub fn index(id: SeriesId) -> usize {
        id.0 as usize
    }

    /// How many series.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no series was seen.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every series, grouped by workload container: `(workload, container) -> [pods' stats]`.
    #[must_use]
    pub fn by_container(&self) -> HashMap<(&WorkloadRef, &str), Vec<&SeriesStats>> {
        let mut groups: HashMap<(&WorkloadRef, &str), Vec<&SeriesStats>> = HashMap::new();
        for (key, stats) in self.keys.iter().zip(&self.stats) {
            groups
                .entry((&key.workload, key.container.as_str()))
                .or_default()
                .push(stats);
        }
        groups
    }

    /// Every series with its stats.
    pub fn iter(&self) -> impl Iterator<Item = (&SeriesKey, &SeriesStats)> {
        self.keys.iter().zip(&self.stats)
    }

    /// Bytes of heap the sketches hold (for reports of memory use).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.stats.iter().map(|s| s.cpu.heap_bytes()).sum::<usize>()
            + self.keys.len()
                * (std::mem::size_of::<SeriesKey>() + std::mem::size_of::<SeriesStats>())
    }
}

/// A workload container's usage, summarised over its pods the way KRR's simple strategy
/// reads it: the CPU percentile of each pod, highest over pods; the memory peak over all.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    /// CPU samples over all pods (KRR counts points the same way).
    pub cpu_samples: u64,
    /// Memory samples over all pods.
    pub memory_samples: u64,
    /// Pods seen.
    pub pods: usize,
    /// Seconds from the first sample to the last.
    pub span_seconds: i64,
    /// Mean CPU, millicores.
    pub cpu_mean: f64,
    /// The CPU percentile asked for, highest over pods, millicores.
    pub cpu_percentile: f64,
    /// The highest CPU sample, millicores.
    pub cpu_max: f64,
    /// The highest memory sample, bytes.
    pub memory_peak: f64,
}

impl UsageSummary {
    /// Summarises the pods' series at the CPU percentile `percentile` (0 to 100).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn of(series: &[&SeriesStats], percentile: f64) -> Option<Self> {
        // A series declared but never sampled (a snapshot line of empty values, say) has no
        // time span and no pod worth counting.
        let series: Vec<&SeriesStats> = series
            .iter()
            .copied()
            .filter(|s| s.cpu.count() + s.memory_samples > 0)
            .collect();
        let cpu_samples: u64 = series.iter().map(|s| s.cpu.count()).sum();
        let memory_samples: u64 = series.iter().map(|s| s.memory_samples).sum();
        if cpu_samples + memory_samples == 0 {
            return None;
        }
        let first = series.iter().map(|s| s.first).min().unwrap_or_default();
        let last = series.iter().map(|s| s.last).max().unwrap_or_default();
        let cpu_sum: f64 = series
            .iter()
            .map(|s| s.cpu.mean() * s.cpu.count() as f64)
            .sum();
        Some(Self {
            cpu_samples,
            memory_samples,
            pods: series.len(),
            span_seconds: last - first,
            cpu_mean: if cpu_samples == 0 {
                0.0
            } else {
                cpu_sum / cpu_samples as f64
            },
            cpu_percentile: series
                .iter()
                .filter_map(|s| s.cpu.quantile(percentile / 100.0))
                .fold(0.0, f64::max),
            cpu_max: series.iter().map(|s| s.cpu.max()).fold(0.0, f64::max),
            memory_peak: series.iter().map(|s| s.memory_peak).fold(0.0, f64::max),
        })
    }
}
