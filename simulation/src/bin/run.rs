//! Runs simulations: `run --seed N` replays one seed exactly;
//! `run --seeds A..B` sweeps a range. Prints each seed's fault schedule
//! and outcome; exits 1 if any seed broke an invariant.
//!
//! Build with `RUSTFLAGS="--cfg madsim"` (the `simulation/run` script does).

#[cfg(madsim)]
fn main() {
    use danaus_simulation::{run, SimConfig};
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 0..1u64;
    let mut seconds = 60;
    let mut quiet = false;
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seed" => {
                let s: u64 = value.parse().unwrap_or_else(|_| usage(&format!("--seed {value:?} is not a number")));
                seeds = s..s + 1;
                i += 1;
            }
            "--seeds" => {
                let (a, b) = value.split_once("..").unwrap_or_else(|| usage("--seeds takes A..B"));
                let (a, b) = (
                    a.parse().unwrap_or_else(|_| usage("bad --seeds start")),
                    b.parse().unwrap_or_else(|_| usage("bad --seeds end")),
                );
                seeds = a..b;
                i += 1;
            }
            "--seconds" => {
                seconds = value.parse().unwrap_or_else(|_| usage("--seconds takes a number"));
                i += 1;
            }
            "--quiet" => quiet = true,
            other => usage(&format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    let mut failed = Vec::new();
    for seed in seeds {
        let outcome = run(SimConfig { seconds, ..SimConfig::new(seed) });
        if !outcome.violations.is_empty() {
            failed.push(seed);
            print!("{}", outcome.report());
        } else if quiet {
            println!(
                "seed {seed}: ok ({} points acked, {} writes failed, {} reads checked, {} faults, trace {:016x})",
                outcome.acked_points,
                outcome.failed_writes,
                outcome.checked_reads,
                outcome.schedule.len(),
                outcome.trace_hash
            );
        } else {
            print!("{}", outcome.report());
        }
    }
    if !failed.is_empty() {
        eprintln!("failing seeds: {failed:?}");
        std::process::exit(1);
    }
}

#[cfg(madsim)]
fn usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: run [--seed N | --seeds A..B] [--seconds S] [--quiet]");
    std::process::exit(2)
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("the simulation runs only when built with RUSTFLAGS=\"--cfg madsim\"; use simulation/run");
    std::process::exit(2);
}
