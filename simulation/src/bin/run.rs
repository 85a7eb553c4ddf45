//! Runs simulations. `run --seed N` runs one seed in this process and
//! prints its fault schedule and outcome; `run --seeds A..B` runs each seed
//! of the range in a process of its own (`--jobs` at a time), so every
//! seed's result is what `run --seed N` replays. Exits 1 if any seed broke
//! an invariant.
//!
//! Build with `RUSTFLAGS="--cfg madsim"` (the `simulation/run` script does).

#[cfg(madsim)]
fn main() {
    use std::process::{Child, Command, Stdio};

    use danaus_simulation::{run, SimConfig, Spec};
    // The roles' logs on stderr, at the level DANAUS_SIM_LOG names (e.g.
    // debug). A plain level filter: `EnvFilter` draws hasher keys inside
    // the simulation, which would change the run being looked at.
    if let Some(level) = std::env::var("DANAUS_SIM_LOG").ok().and_then(|l| l.parse::<tracing::Level>().ok()) {
        tracing_subscriber::fmt().with_max_level(level).with_ansi(false).with_writer(std::io::stderr).init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 0..1u64;
    let mut many = false;
    let mut seconds = 60;
    let mut quiet = false;
    let mut jobs = 2usize;
    let mut timeout = std::time::Duration::from_secs(300);
    let mut spec = Spec::default();
    let mut sabotage = false;
    let mut standalone: Option<bool> = None;
    let mut passthrough = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let number = |what: &str| -> u64 {
            value.parse().unwrap_or_else(|_| usage(&format!("{what} takes a number, not {value:?}")))
        };
        match args[i].as_str() {
            "--seed" => {
                let s = number("--seed");
                seeds = s..s + 1;
            }
            "--seeds" => {
                let (a, b) = value.split_once("..").unwrap_or_else(|| usage("--seeds takes A..B"));
                let a = a.parse().unwrap_or_else(|_| usage("bad --seeds start"));
                let b = b.parse().unwrap_or_else(|_| usage("bad --seeds end"));
                seeds = a..b;
                many = true;
            }
            "--seconds" => seconds = number("--seconds"),
            "--jobs" => jobs = number("--jobs").max(1) as usize,
            "--timeout" => timeout = std::time::Duration::from_secs(number("--timeout").max(1)),
            "--zones" => spec.zones = number("--zones").clamp(1, 200) as usize,
            "--leaves" => spec.leaves = number("--leaves").clamp(1, 99) as usize,
            "--assigners" => spec.assigners = number("--assigners").clamp(1, 9) as usize,
            "--routers" => spec.routers = number("--routers").clamp(1, 9) as usize,
            "--replication" => spec.replication = number("--replication").max(1) as u32,
            "--standalone" => {
                standalone = Some(match value.as_str() {
                    "yes" => true,
                    "no" => false,
                    v => usage(&format!("--standalone takes yes or no, not {v:?}")),
                })
            }
            "--quiet" => quiet = true,
            "--sabotage" => sabotage = true,
            other => usage(&format!("unknown argument {other:?}")),
        }
        let flag = matches!(args[i].as_str(), "--quiet" | "--sabotage");
        if args[i] == "--sabotage" {
            passthrough.push(args[i].clone());
        } else if !flag && !matches!(args[i].as_str(), "--seed" | "--seeds" | "--jobs" | "--timeout") {
            passthrough.push(args[i].clone());
            passthrough.push(value.clone());
        }
        i += if flag { 1 } else { 2 };
    }
    if spec.replication as usize > spec.leaves {
        usage("--replication cannot exceed --leaves");
    }
    if !many {
        let seed = seeds.start;
        let d = SimConfig::new(seed);
        spec.standalone = standalone.unwrap_or(d.spec.standalone);
        let outcome = run(SimConfig { seconds, spec, sabotage, ..d });
        if quiet && outcome.violations.is_empty() {
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
        std::process::exit(if outcome.violations.is_empty() { 0 } else { 1 });
    }
    // One process per seed, `jobs` at a time, reported in seed order.
    let exe = std::env::current_exe().unwrap_or_else(|e| usage(&format!("cannot find this program: {e}")));
    let start = |seed: u64| -> Child {
        let mut c = Command::new(&exe);
        c.arg("--seed").arg(seed.to_string()).args(&passthrough).stdout(Stdio::piped());
        if quiet {
            c.arg("--quiet");
        }
        c.spawn().unwrap_or_else(|e| usage(&format!("cannot start a simulation process: {e}")))
    };
    let mut failed = Vec::new();
    let mut running = std::collections::VecDeque::new();
    let mut next = seeds.clone();
    loop {
        while running.len() < jobs {
            match next.next() {
                Some(s) => running.push_back((s, start(s))),
                None => break,
            }
        }
        let Some((seed, mut child)) = running.pop_front() else { break };
        // A seed that does not finish is a failure too (a livelock, a
        // workload that never ends); the child is killed and reported.
        let began = std::time::Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if began.elapsed() < timeout => std::thread::sleep(std::time::Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        }
        print!("{out}");
        match status {
            Some(s) if s.success() => {}
            Some(_) => failed.push(seed),
            None => {
                println!(
                    "seed {seed}: did not finish within {timeout:?} (a hang?); replay: simulation/run --seed {seed}{}",
                    passthrough.iter().map(|a| format!(" {a}")).collect::<String>()
                );
                failed.push(seed);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("failing seeds: {failed:?} (replay one: simulation/run --seed N)");
        std::process::exit(1);
    }
}

#[cfg(madsim)]
fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: run [--seed N | --seeds A..B [--jobs J] [--timeout S]] [--seconds S] [--quiet]\n           \
         [--zones Z] [--leaves L] [--assigners A] [--routers N] [--replication R]\n           \
         [--standalone yes|no] [--sabotage]"
    );
    std::process::exit(2)
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("the simulation runs only when built with RUSTFLAGS=\"--cfg madsim\"; use simulation/run");
    std::process::exit(2);
}
