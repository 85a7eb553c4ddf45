//! The simulation's fixed seeds, and proof that a seed replays exactly.
//! Runs only under `RUSTFLAGS="--cfg madsim"` (`scripts/simulate`).

#![cfg(madsim)]

use danaus_simulation::{run, SimConfig};

/// Seeds CI runs on every change. Regression seeds (ones that once found a
/// bug) are listed with what they found.
const SEEDS: std::ops::Range<u64> = 0..12;

#[test]
fn fixed_seeds_hold_every_invariant() {
    let mut failures = Vec::new();
    for seed in SEEDS {
        let outcome = run(SimConfig::new(seed));
        assert!(outcome.acked_points > 0, "seed {seed}: nothing was acknowledged\n{}", outcome.report());
        if !outcome.violations.is_empty() {
            failures.push(outcome.report());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let a = run(SimConfig::new(7));
    let b = run(SimConfig::new(7));
    assert_eq!(a, b, "seed 7 ran differently twice:\n{}\n{}", a.report(), b.report());
    let c = run(SimConfig::new(8));
    assert_ne!(a.trace_hash, c.trace_hash, "different seeds gave the same trace");
}
