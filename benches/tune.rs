//! Tune's hot paths. The target: a snapshot of 10,000 workloads x 3 containers x 14
//! days at 5-minute resolution analysed in <= 10 s with peak RSS <= 300 MB; that end-to-end
//! figure comes from `benches/tune_snapshot.rs` (the generator) and the release CLI. Here:
//!
//! - `sketch/add`: folding one sample into a sketch (per sample, the innermost loop);
//! - `sketch/quantile`: a p95 from a sketch of 4,032 samples (per container);
//! - `read`: parsing `samples.csv` into sketches, per 100,000 sample lines;
//! - `analyse`: recommendations and findings for 10,000 workloads x 3 containers from their
//!   sketches.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kubezen::tune::sketch::Sketch;
use kubezen::tune::{
    self, Inventory, Options, SeriesKey, Usage, WorkloadKind, WorkloadRef, snapshot,
};
use serde_json::json;

fn sketch(c: &mut Criterion) {
    let mut group = c.benchmark_group("sketch");
    let values: Vec<f64> = (0..4032)
        .map(|i| 50.0 + f64::from(i % 977) * 0.37)
        .collect();
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function("add", |b| {
        b.iter(|| {
            let mut sketch = Sketch::new();
            for &v in &values {
                sketch.add(black_box(v));
            }
            sketch
        });
    });
    let mut full = Sketch::new();
    for &v in &values {
        full.add(v);
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("quantile", |b| b.iter(|| black_box(&full).quantile(0.95)));
    group.finish();
}

fn workloads(count: usize) -> Vec<serde_json::Value> {
    (0..count)
        .map(|w| {
            let containers: Vec<_> = ["app", "sidecar", "metrics"]
                .iter()
                .map(|c| json!({"name": c, "image": "x", "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}}))
                .collect();
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": format!("svc-{w}"), "namespace": format!("team-{}", w % 100)},
                   "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": format!("svc-{w}")}}, "spec": {"containers": containers}}}})
        })
        .collect()
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let meta = snapshot::Meta::now("bench", "", std::time::Duration::from_secs(300));
    let mut writer = snapshot::Writer::create(dir.path(), &meta).unwrap();
    for object in workloads(100) {
        writer.object(&object).unwrap();
    }
    let keys: Vec<SeriesKey> = (0..300)
        .map(|s| SeriesKey {
            workload: WorkloadRef {
                namespace: format!("team-{}", (s / 3) % 100),
                kind: WorkloadKind::Deployment,
                name: format!("svc-{}", s / 3),
            },
            container: ["app", "sidecar", "metrics"][s % 3].into(),
            pod: format!("svc-{}-abc-x", s / 3),
        })
        .collect();
    for i in 0..(100_000 / keys.len()) {
        for (s, key) in keys.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let cpu = 10.0 + ((i * 31 + s * 7) % 400) as f64 * 0.25;
            writer
                .sample(
                    key,
                    1_790_000_000 + i64::try_from(i).unwrap() * 300,
                    Some(cpu),
                    Some(1e8),
                )
                .unwrap();
        }
    }
    let lines = writer.finish().unwrap();
    let mut group = c.benchmark_group("tune");
    group.throughput(Throughput::Elements(lines));
    group.bench_function("read", |b| {
        b.iter(|| snapshot::read(dir.path(), &|| false).unwrap().samples);
    });
    group.finish();
}

fn analyse(c: &mut Criterion) {
    let inventory = Inventory::from_objects(workloads(10_000), "default");
    let mut usage = Usage::new();
    for workload in inventory.workloads() {
        for container in &workload.containers {
            for pod in 0..2 {
                let id = usage.series(SeriesKey {
                    workload: workload.id.clone(),
                    container: container.name.clone(),
                    pod: format!("{}-{pod}", workload.id.name),
                });
                for i in 0..200 {
                    usage.record_cpu(
                        id,
                        i * 300,
                        20.0 + f64::from(i32::try_from(i % 50).unwrap()),
                    );
                    usage.record_memory(id, i * 300, 1e8);
                }
            }
        }
    }
    let mut group = c.benchmark_group("tune");
    group.sample_size(10);
    group.bench_function("analyse/10000x3", |b| {
        b.iter(|| {
            tune::analyse(&inventory, Some(&usage), &Options::default(), "bench")
                .recommendations
                .len()
        });
    });
    group.finish();
}

criterion_group!(benches, sketch, read, analyse);
criterion_main!(benches);
