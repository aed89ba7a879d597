//! Diff parsing and application on a program of realistic size.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use evolve_core::diff::apply_reply;

fn program(lines: usize) -> String {
    let mut text = String::from("import math\n# EVOLVE-BLOCK-START\ndef f(x):\n");
    for i in 0..lines {
        let _ = writeln!(text, "    v{i} = x * {i}.5 + math.sin({i})");
    }
    text.push_str("    return x\n# EVOLVE-BLOCK-END\nprint(f(1))\n");
    text
}

fn bench_apply(c: &mut Criterion) {
    let text = program(300);
    let exact = "<<<<<<< SEARCH\n    v150 = x * 150.5 + math.sin(150)\n=======\n    v150 = x * 2\n>>>>>>> REPLACE\n";
    let reindented = "<<<<<<< SEARCH\n  v299 = x * 299.5 + math.sin(299)\n  return x\n=======\n  return v299\n>>>>>>> REPLACE\n";
    c.bench_function("diff/exact_300_lines", |b| {
        b.iter(|| apply_reply(black_box(&text), black_box(exact)).map(|d| d.program.len()))
    });
    c.bench_function("diff/indentation_tolerant_300_lines", |b| {
        b.iter(|| apply_reply(black_box(&text), black_box(reindented)).map(|d| d.program.len()))
    });
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
