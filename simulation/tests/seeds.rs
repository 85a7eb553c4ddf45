//! The simulation's fixed seeds, its regression seeds, proof that the
//! checks catch lost data, and proof that a seed replays exactly. Runs only
//! under `RUSTFLAGS="--cfg madsim"` (`scripts/simulate`).
//!
//! Every seed runs in a process of its own (the `run` binary), as a
//! developer replaying it would: a seed's outcome then depends on the seed
//! alone, not on the runs before it in the same process.

#![cfg(madsim)]

use std::process::Command;

/// Seeds CI runs on every change (60 simulated seconds each).
const SEEDS: &str = "0..300";

/// Runs that once found a product bug: (the `run` arguments, what it
/// found). Each fails on the code before its fix.
const REGRESSIONS: &[(&[&str], &str)] = &[
    (
        &["--seed", "102"],
        "a router that had just restarted read locations with an empty zone table: series of zone z0 were \
         stored (and acknowledged) in z1, where z0's mixer never reads",
    ),
    (
        &["--seed", "359"],
        "a router following an assigner member that was still replaying its log refused valid series as \
         'unknown metric schema' (a stale table, judged as final)",
    ),
    (
        &["--seed", "2"],
        "with one leader per term (standard Raft), zone z0's three assigner members split every election for \
         ever: openraft draws each member's election timeout once, and theirs fell on the same tick",
    ),
    (
        &[
            "--seed",
            "103",
            "--zones",
            "1",
            "--leaves",
            "2",
            "--assigners",
            "5",
            "--routers",
            "1",
            "--replication",
            "1",
            "--standalone",
            "no",
        ],
        "a range copied to a new leaf while the index server was unreachable: the index still held the leaf's \
         older field hints and pruned it, so a query returned none of the range's series and called itself \
         complete",
    ),
    (
        &["--seed", "19335"],
        "a leaf's hints keepalive, sent before a range was copied to it, spent 1.4 s in the network and \
         arrived after the leaf's lease had run out; the index server counted freshness from its arrival \
         and pruned the leaf, so a query returned none of the copied series and called itself complete",
    ),
    (
        &["--seed", "37677"],
        "the same race for a new series: its write was acknowledged when the leaf's hints lease ran out, \
         while a delayed push of the older set was still on its way and renewed the index server's set",
    ),
    (
        &["--seed", "150701"],
        "a write creating a series was held while the zone index waited for the root index to take its \
         hints; the router gave up on it, and its retry found the series there and was acknowledged at once, \
         so the root mixer skipped the zone by a claim without the series and called its answer complete",
    ),
];

/// Runs the simulation binary with `args`; (success, stdout).
fn sim(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_run")).args(args).output().expect("the simulation binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The number after `what` in a quiet outcome line ("12 faults").
fn count(line: &str, what: &str) -> usize {
    let words: Vec<&str> = line.split([' ', '(', ',']).filter(|w| !w.is_empty()).collect();
    words.windows(2).find(|w| w[1] == what).and_then(|w| w[0].parse().ok()).unwrap_or(0)
}

#[test]
fn fixed_seeds_hold_every_invariant() {
    let (ok, out) = sim(&["--seeds", SEEDS, "--quiet", "--jobs", "2"]);
    assert!(ok, "seeds broke invariants:\n{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(": ok (")).collect();
    assert_eq!(lines.len(), 300, "{out}");
    for l in &lines {
        assert!(count(l, "points") > 0 && count(l, "reads") > 0, "a seed did nothing: {l}");
    }
    // The faults must bite: clients saw failures.
    let faults: usize = lines.iter().map(|l| count(l, "faults")).sum();
    let failed: usize = lines.iter().map(|l| count(l, "writes")).sum();
    assert!(faults > 2000 && failed > 3000, "{faults} faults, {failed} failed writes");
}

#[test]
fn regression_seeds_and_a_long_run_hold_every_invariant() {
    for (args, found) in REGRESSIONS {
        let (ok, out) = sim(args);
        assert!(ok, "regression run {args:?} (it once found: {found}) fails again:\n{out}");
    }
    let (ok, out) = sim(&["--seed", "424242", "--seconds", "600"]);
    assert!(ok, "the long run failed:\n{out}");
}

#[test]
fn the_checks_catch_lost_acknowledged_points() {
    // Zone z0's leaves lose their disks half way: acknowledged points are
    // gone, and the run must say so, and how to replay it.
    let (ok, out) = sim(&["--seed", "3", "--sabotage"]);
    assert!(!ok, "a run that lost acknowledged points passed:\n{out}");
    assert!(out.contains("lost") && out.contains("acknowledged points"), "{out}");
    assert!(out.contains("replay: simulation/run --seed 3 --sabotage"), "{out}");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let (ok_a, a) = sim(&["--seed", "7"]);
    let (ok_b, b) = sim(&["--seed", "7"]);
    assert!(ok_a && ok_b, "{a}\n{b}");
    assert!(a.contains(", trace "), "{a}");
    assert_eq!(a, b, "seed 7 ran differently twice");
    let (_, c) = sim(&["--seed", "8"]);
    let trace = |s: &str| s.split(", trace ").nth(1).map(|t| t[..16].to_owned());
    assert_ne!(trace(&a), trace(&c), "different seeds gave the same trace");
    // A sweep's line for a seed is the seed's own run.
    let (_, sweep) = sim(&["--seeds", "6..9", "--quiet"]);
    let (_, alone) = sim(&["--seed", "7", "--quiet"]);
    assert!(sweep.contains(alone.trim()), "seed 7 in a sweep:\n{sweep}\nalone:\n{alone}");
}
