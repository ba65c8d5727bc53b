//! Resource graphs at scale: the targets are validate + order of a 1,000-resource RGD
//! (~2,000 expressions) in <= 20 ms and of 10,000 resources in <= 250 ms, with time per
//! resource flat from 10 to 10,000.
//!
//! `analyse` is validation and ordering from parsed YAML (what `graph validate` does after
//! reading), with the CEL cache warm as in a long-running process; `analyse-cold` clears the
//! cache first, as a one-shot `kubectl zen graph validate` starts; `parse+analyse` adds
//! reading the YAML text.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kubezen::{
    cel::Engine,
    graph::{Catalog, Origin, ResourceGraph, parse_str, synthetic_rgd},
};
use serde::Deserialize as _;

fn origin() -> Origin {
    Origin {
        file: "bench".into(),
        document: 1,
    }
}

/// Validation and ordering; the graph is returned so criterion drops it outside the timing
/// (the plugin never frees it: it exits).
fn analyse(document: serde_json::Value) -> ResourceGraph {
    let graph = ResourceGraph::from_json(document, origin(), &Catalog::builtin());
    assert!(!graph.has_errors(), "{:?}", graph.diagnostics.first());
    assert_eq!(graph.order().map(|o| o.len()), Some(graph.resources.len()));
    assert!(graph.waves().is_some());
    graph
}

fn graphs(c: &mut Criterion) {
    let mut group = c.benchmark_group("graph");
    group.sample_size(20);
    for resources in [10, 30, 100, 1_000, 10_000] {
        let yaml = synthetic_rgd(resources);
        let document =
            serde_json::Value::deserialize(serde_norway::Deserializer::from_str(&yaml)).unwrap();
        group.throughput(Throughput::Elements(resources as u64));
        // The analysis takes the document; cloning it is set-up, not measured.
        group.bench_with_input(BenchmarkId::new("analyse", resources), &document, |b, d| {
            b.iter_batched(
                || d.clone(),
                |d| analyse(black_box(d)),
                BatchSize::LargeInput,
            );
        });
        group.bench_with_input(
            BenchmarkId::new("analyse-cold", resources),
            &document,
            |b, d| {
                b.iter_batched(
                    || {
                        Engine::global().clear_cache();
                        d.clone()
                    },
                    |d| analyse(black_box(d)),
                    BatchSize::PerIteration,
                );
            },
        );
        if resources >= 1_000 {
            group.bench_with_input(
                BenchmarkId::new("parse+analyse", resources),
                &yaml,
                |b, y| {
                    b.iter(|| {
                        parse_str(black_box(y), "bench", &Catalog::builtin())
                            .unwrap()
                            .len()
                    });
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, graphs);
criterion_main!(benches);
