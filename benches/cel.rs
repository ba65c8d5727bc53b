//! The CEL engine's hot paths: cached evaluation, cache lookups, and compile against evaluate
//! on the documented set of 20 expressions (`benches/cel_expressions.json`), simple to very
//! complex. `python3 benches/cel_report.py` turns the results into the ratio table.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kubezen::cel::{Engine, Variables};
use serde_json::json;

const SET: &str = include_str!("cel_expressions.json");

fn kro_target(c: &mut Criterion) {
    let engine = Engine::new(1024);
    let source = "schema.spec.replicas > 2";
    let vars = Variables::from_json(&json!({"schema": {"spec": {"replicas": 3}}})).unwrap();
    let program = engine.compile(source).unwrap();

    let mut group = c.benchmark_group("cel/kro");
    group.bench_function("cached_eval", |b| {
        b.iter(|| black_box(program.evaluate(black_box(&vars)).unwrap()));
    });
    group.bench_function("cache_hit", |b| {
        b.iter(|| black_box(engine.compile(black_box(source)).unwrap()));
    });
    group.bench_function("lookup_and_eval", |b| {
        b.iter(|| black_box(engine.evaluate(black_box(source), &vars).unwrap()));
    });
    group.bench_function("compile", |b| {
        b.iter(|| black_box(engine.compile_uncached(black_box(source)).unwrap()));
    });
    group.finish();
}

fn expression_set(c: &mut Criterion) {
    let set: serde_json::Value = serde_json::from_str(SET).unwrap();
    let vars = Variables::from_json(&set["variables"]).unwrap();
    let engine = Engine::new(1024);
    let mut compile = c.benchmark_group("cel/compile");
    for entry in set["expressions"].as_array().unwrap() {
        let (name, source) = (
            entry["name"].as_str().unwrap(),
            entry["expression"].as_str().unwrap(),
        );
        compile.bench_with_input(BenchmarkId::from_parameter(name), source, |b, source| {
            b.iter(|| black_box(engine.compile_uncached(source).unwrap()));
        });
    }
    compile.finish();
    let mut eval = c.benchmark_group("cel/eval");
    for entry in set["expressions"].as_array().unwrap() {
        let (name, source) = (
            entry["name"].as_str().unwrap(),
            entry["expression"].as_str().unwrap(),
        );
        let program = engine.compile(source).unwrap();
        eval.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(program.evaluate(&vars).unwrap()));
        });
    }
    eval.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = kro_target, expression_set
}
criterion_main!(benches);
