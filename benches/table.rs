//! Rendering large tables: `tune` and `bench` print one row per workload or verb, and a big
//! cluster has thousands of workloads.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kubezen::{
    Cell, Column, Table, Tone,
    table::{Painter, Plain},
};

fn workloads(rows: usize) -> Table {
    let mut table = Table::new(vec![
        Column::new("NAMESPACE"),
        Column::new("NAME"),
        Column::new("CPU").right(),
        Column::new("MEMORY").right(),
        Column::wide("NODE"),
        Column::new("STATUS"),
    ]);
    for i in 0..rows {
        table.push_row(vec![
            Cell::from(format!("team-{}", i % 37)),
            Cell::from(format!("deployment-{i}-api-server")),
            Cell::from(format!("{}m", (i * 7) % 4000)),
            Cell::from(format!("{}Mi", (i * 13) % 8192)),
            Cell::from(format!("node-{}", i % 200)),
            Cell::toned(
                if i % 10 == 0 { "Overprovisioned" } else { "Ok" },
                if i % 10 == 0 {
                    Tone::Warning
                } else {
                    Tone::Good
                },
            ),
        ]);
    }
    table
}

/// Writes escape codes like a colour terminal would, to price the painted path.
struct Ansi;

impl Painter for Ansi {
    fn paint(&self, out: &mut dyn std::io::Write, text: &str, tone: Tone) -> std::io::Result<()> {
        match tone {
            Tone::Plain => out.write_all(text.as_bytes()),
            _ => write!(out, "\x1b[1;32m{text}\x1b[0m"),
        }
    }
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("table/write_text");
    for rows in [100, 10_000] {
        let table = workloads(rows);
        group.throughput(Throughput::Elements(rows as u64));
        let mut out = Vec::with_capacity(rows * 96);
        group.bench_with_input(BenchmarkId::new("plain", rows), &table, |b, table| {
            b.iter(|| {
                out.clear();
                table.write_text(&mut out, true, &Plain).unwrap();
                black_box(out.len())
            });
        });
        group.bench_with_input(BenchmarkId::new("painted", rows), &table, |b, table| {
            b.iter(|| {
                out.clear();
                table.write_text(&mut out, true, &Ansi).unwrap();
                black_box(out.len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
