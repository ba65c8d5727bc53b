//! The tune snapshot generator and checker behind the closing figures of issue #7.
//!
//! ```text
//! cargo bench --bench tune_snapshot -- generate DIR [WORKLOADS [DAYS [STEP_SECONDS]]]
//! target/release/kubectl-zen tune --snapshot DIR -o csv > DIR/report.csv
//! cargo bench --bench tune_snapshot -- check DIR
//! ```
//!
//! `generate` writes a snapshot (the documented format) of WORKLOADS Deployments (10,000) with
//! three containers each, one pod, DAYS (14) of samples every `STEP_SECONDS` (300): usage drawn
//! from a seeded generator with a daily cycle, memory with rare spikes. Beside it,
//! `expected.csv` holds the right answers computed exactly (every sample of a series sorted:
//! the nearest-rank p95 of CPU, the memory peak) and turned into requests by KRR's simple
//! strategy. `check` compares a `-o csv` report with them: CPU within the sketch's 1 %
//! (rounded up to 1m), memory exactly.

// Counts, seconds and sample values of a generated snapshot are far inside every type's range.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

const MIB: f64 = 1_048_576.0;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("generate") if args.len() >= 2 => {
            let number = |at: usize, default: u64| {
                args.get(at)
                    .map_or(default, |a| a.parse().expect("a whole number"))
            };
            generate(
                Path::new(&args[1]),
                number(2, 10_000),
                number(3, 14),
                number(4, 300),
            );
        }
        Some("check") if args.len() >= 2 => check(Path::new(&args[1])),
        _ => {
            // `cargo bench` with no arguments: nothing to measure here; say how to use it.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "usage: cargo bench --bench tune_snapshot -- generate DIR [WORKLOADS [DAYS [STEP]]] | check DIR"
            );
        }
    }
}

/// A seeded xorshift generator: the same snapshot on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn generate(dir: &Path, workloads: u64, days: u64, step: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let samples_per_series = days * 86_400 / step;
    let start: i64 = 1_790_000_000;
    std::fs::write(
        dir.join("snapshot.json"),
        format!(
            "{{\"format\": \"kubezen.tune.snapshot/v1\", \"recorded\": \"2026-11-23T00:00:00Z\", \"source\": \"generated: {workloads} workloads x 3 containers x {days} days every {step}s\", \"cluster\": \"\", \"intervalSeconds\": {step}}}\n"
        ),
    )
    .unwrap();
    let mut objects = BufWriter::new(File::create(dir.join("objects.jsonl")).unwrap());
    let mut series = BufWriter::new(File::create(dir.join("series.csv")).unwrap());
    let mut samples =
        BufWriter::with_capacity(1 << 20, File::create(dir.join("samples.csv")).unwrap());
    let mut expected = BufWriter::new(File::create(dir.join("expected.csv")).unwrap());
    writeln!(series, "series,namespace,kind,workload,container,pod").unwrap();
    writeln!(samples, "series,timestamp,cpu_millicores,memory_bytes").unwrap();
    writeln!(
        expected,
        "namespace,workload,container,cpu_p95,memory_peak,cpu_request,memory_request"
    )
    .unwrap();
    let containers = ["app", "sidecar", "metrics"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut line = String::with_capacity(64);
    // Each series' values, for the exact answers; samples are written time-major (as a
    // recorder writes them), so every series is open at once.
    let mut cpu: Vec<Vec<f32>> = Vec::new();
    let mut peak: Vec<f64> = Vec::new();
    let mut levels: Vec<(f64, f64)> = Vec::new();
    for w in 0..workloads {
        let namespace = format!("team-{}", w % 100);
        let name = format!("svc-{w}");
        let containers_json: Vec<String> = containers
            .iter()
            .map(|c| format!("{{\"name\": \"{c}\", \"image\": \"example/{c}:1\", \"resources\": {{\"requests\": {{\"cpu\": \"500m\", \"memory\": \"512Mi\"}}, \"limits\": {{\"memory\": \"512Mi\"}}}}}}"))
            .collect();
        writeln!(
            objects,
            "{{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\", \"metadata\": {{\"name\": \"{name}\", \"namespace\": \"{namespace}\"}}, \"spec\": {{\"replicas\": 1, \"selector\": {{\"matchLabels\": {{\"app\": \"{name}\"}}}}, \"template\": {{\"metadata\": {{\"labels\": {{\"app\": \"{name}\"}}}}, \"spec\": {{\"containers\": [{}]}}}}}}}}",
            containers_json.join(", ")
        )
        .unwrap();
        for (c, container) in containers.iter().enumerate() {
            let id = w * 3 + c as u64;
            writeln!(
                series,
                "{id},{namespace},Deployment,{name},{container},{name}-7d9f8b6c5-x2x9k"
            )
            .unwrap();
            let cpu_level = 5.0 + 995.0 * rng.next() * rng.next();
            let memory_level = (32.0 + 2000.0 * rng.next() * rng.next()) * MIB;
            levels.push((cpu_level, memory_level));
            cpu.push(Vec::with_capacity(samples_per_series as usize));
            peak.push(0.0);
        }
    }
    for i in 0..samples_per_series {
        let timestamp = start + (i * step) as i64;
        let daily = (i as f64 * step as f64 / 86_400.0 * std::f64::consts::TAU).sin();
        for (id, &(cpu_level, memory_level)) in levels.iter().enumerate() {
            let value = cpu_level * (1.0 + 0.3 * daily) * (0.5 + rng.next());
            let value = (value * 1000.0).round() / 1000.0;
            let spike = if rng.next() < 0.0005 { 1.5 } else { 1.0 };
            let memory = (memory_level * (1.0 + 0.05 * daily + 0.05 * rng.next()) * spike).round();
            cpu[id].push(value as f32);
            peak[id] = peak[id].max(memory);
            line.clear();
            writeln!(line, "{id},{timestamp},{value},{memory}").unwrap();
            samples.write_all(line.as_bytes()).unwrap();
        }
    }
    for (id, values) in cpu.iter_mut().enumerate() {
        values.sort_by(f32::total_cmp);
        let rank = ((0.95 * values.len() as f64).ceil() as usize).max(1);
        let p95 = f64::from(values[rank - 1]);
        let (w, c) = (id / 3, id % 3);
        let cpu_request = (p95 - 1e-9).ceil().max(10.0);
        let memory_request = ((peak[id] * 1.15 / MIB) - 1e-9).ceil().max(100.0) * MIB;
        writeln!(
            expected,
            "team-{},svc-{w},{},{p95},{},{cpu_request},{memory_request}",
            w % 100,
            containers[c],
            peak[id]
        )
        .unwrap();
    }
    for mut file in [objects, series, samples, expected] {
        file.flush().unwrap();
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "wrote {} series x {samples_per_series} samples = {} samples to {}",
        levels.len(),
        levels.len() as u64 * samples_per_series,
        dir.display()
    );
}

fn check(dir: &Path) {
    let read = |name: &str| -> Vec<Vec<String>> {
        BufReader::new(File::open(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")))
            .lines()
            .skip(1)
            .map(|l| l.unwrap().split(',').map(str::to_owned).collect())
            .collect()
    };
    let expected: HashMap<(String, String, String), (f64, f64)> = read("expected.csv")
        .into_iter()
        .map(|r| {
            (
                (r[0].clone(), r[1].clone(), r[2].clone()),
                (r[5].parse().unwrap(), r[6].parse().unwrap()),
            )
        })
        .collect();
    let (mut checked, mut worst_cpu, mut cpu_wrong, mut memory_wrong) = (0, 0.0_f64, 0, 0);
    for row in read("report.csv") {
        // namespace,kind,workload,container,...,cpu_request_new (7), ..., memory_request_new (11)
        let key = (row[0].clone(), row[2].clone(), row[3].clone());
        let (cpu, memory) = expected[&key];
        let got_cpu: f64 = row[7]
            .parse()
            .unwrap_or_else(|_| panic!("no CPU number for {key:?}: {row:?}"));
        let got_memory: f64 = row[11].parse().unwrap();
        worst_cpu = worst_cpu.max((got_cpu - cpu).abs() / cpu);
        // The sketch's 1 %, and the rounding up to 1m on either side.
        if (got_cpu - cpu).abs() > 0.0101 * cpu + 1.0 {
            cpu_wrong += 1;
        }
        if (got_memory - memory).abs() > 0.5 {
            memory_wrong += 1;
        }
        checked += 1;
    }
    assert_eq!(checked, expected.len(), "every container is in the report");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "checked {checked} containers: CPU requests at most {:.2} % from the exact answer, {} outside 1 % + 1m; memory exact in {} of {checked}",
        worst_cpu * 100.0,
        cpu_wrong,
        checked - memory_wrong
    );
    assert_eq!(cpu_wrong, 0, "CPU requests outside the sketch's accuracy");
    assert_eq!(
        memory_wrong, 0,
        "memory requests differ from the exact answer"
    );
}
