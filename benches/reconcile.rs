//! Reconcile at scale. The targets: `--dry-run` of a 1,000-resource instance in
//! <= 100 ms (release), and a 100-resource instance applied to zen-sim with `--workers 4`,
//! reported as wall time and API calls, with an unchanged re-run making no write calls.
//!
//! `dry-run` is what `kubectl zen reconcile --dry-run` does after reading the files: analyse
//! the graph, compile the plan, admit the instance, render every object. `render` is the
//! rendering alone, what the controller repeats per instance with its plan kept. `apply` runs
//! against zen-sim in-process on loopback: `first` applies 100 config maps, `unchanged` is the
//! re-run, timed by criterion.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kubezen::cluster::{Cluster, ClusterOptions};
use kubezen::graph::{Catalog, parse_str, synthetic_rgd};
use kubezen::reconcile::{Options, Plan, Reconciler};
use kubezen::sim::{Sim, SimOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn instance() -> serde_json::Value {
    json!({"apiVersion": "kro.run/v1alpha1", "kind": "Synthetic",
           "metadata": {"name": "bench", "namespace": "default"}, "spec": {"name": "bench"}})
}

fn plan(resources: usize) -> Plan {
    let graphs = parse_str(&synthetic_rgd(resources), "bench", &Catalog::builtin()).unwrap();
    Plan::new(&graphs[0]).unwrap()
}

fn offline(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile");
    for resources in [100, 1_000] {
        let yaml = synthetic_rgd(resources);
        group.bench_with_input(BenchmarkId::new("dry-run", resources), &yaml, |b, yaml| {
            b.iter(|| {
                let graphs = parse_str(yaml, "bench", &Catalog::builtin()).unwrap();
                let plan = Plan::new(&graphs[0]).unwrap();
                let instance = plan.admit(instance(), "default").unwrap();
                black_box(plan.render_offline(&instance).unwrap())
            });
        });
        let plan = plan(resources);
        let admitted = plan.admit(instance(), "default").unwrap();
        group.bench_with_input(
            BenchmarkId::new("render", resources),
            &admitted,
            |b, admitted| {
                b.iter(|| black_box(plan.render_offline(admitted).unwrap()));
            },
        );
    }
    group.finish();
}

#[allow(clippy::print_stdout)] // a benchmark prints its figures
fn live(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sim, reconciler) = runtime.block_on(async {
        let sim = Sim::start(SimOptions::default()).await.unwrap();
        let options = ClusterOptions {
            qps: 0.0,
            ..ClusterOptions::default()
        };
        let cluster = Cluster::from_config(sim.kube_config().await.unwrap(), &options).unwrap();
        (sim, Reconciler::new(cluster, Arc::new(plan(100))))
    });
    let options = Options::default();
    let cancel = CancellationToken::new();
    let admitted = reconciler.admit(instance()).unwrap();
    let started = Instant::now();
    let first = runtime
        .block_on(reconciler.apply(&admitted, &options, &(), &cancel))
        .unwrap();
    assert!(first.ok());
    println!(
        "apply of 100 resources to zen-sim, --workers 4: {:.1} ms wall, {} API calls, {} writes",
        started.elapsed().as_secs_f64() * 1e3,
        first.api_calls,
        first.writes
    );
    let again = runtime
        .block_on(reconciler.apply(&admitted, &options, &(), &cancel))
        .unwrap();
    assert_eq!(again.writes, 0, "an unchanged re-run writes nothing");
    println!(
        "unchanged re-run: {} ms wall, {} API calls, {} writes",
        again.millis, again.api_calls, again.writes
    );
    let mut group = c.benchmark_group("reconcile");
    group.sample_size(20);
    group.bench_function("apply/unchanged/100", |b| {
        b.iter(|| {
            runtime
                .block_on(reconciler.apply(&admitted, &options, &(), &cancel))
                .unwrap()
        });
    });
    group.finish();
    drop(sim);
}

criterion_group!(benches, offline, live);
criterion_main!(benches);
