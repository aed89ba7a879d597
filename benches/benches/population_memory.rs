//! Peak memory and wall time of resuming a run of 1 000 000 programs.
//!
//! `cargo bench -p evolve-benches --bench population_memory [-- N]`: builds a
//! store of N programs (default 1 000 000), then re-runs itself on it so the
//! child's peak resident memory (VmHWM) covers the rebuild alone.

use std::process::Command;
use std::time::Instant;

use evolve_benches::{build_store, config, peak_memory_kib};
use evolve_store::{DB_FILE, Store};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(db) = args
        .iter()
        .position(|a| a == "--rebuild")
        .and_then(|i| args.get(i + 1))
    {
        let started = Instant::now();
        let store = Store::open(std::path::Path::new(db)).expect("open the store");
        let population = store.rebuild(config()).expect("rebuild");
        let elapsed = started.elapsed();
        let members: usize = (0..population.island_count())
            .map(|i| population.members(i).len())
            .sum();
        println!(
            "rebuild: {:.2} s, {members} members, peak memory {} MiB",
            elapsed.as_secs_f64(),
            peak_memory_kib().unwrap_or(0) / 1024
        );
        return;
    }
    let n: u64 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("a temp dir");
    let started = Instant::now();
    drop(build_store(dir.path(), n).expect("a bench store"));
    println!(
        "built a store of {n} programs in {:.1} s ({} MiB on disk)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(dir.path().join(DB_FILE)).map_or(0, |m| m.len() >> 20)
    );
    let status = Command::new(std::env::current_exe().expect("own path"))
        .arg("--rebuild")
        .arg(dir.path().join(DB_FILE))
        .status()
        .expect("run the rebuild");
    assert!(status.success());
}
