//! `danausctl rules`: rule files checked and tested on this machine, as
//! `promtool check rules` and `promtool test rules` do (same reports,
//! same exit codes), so a team's CI can swap one for the other.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Subcommand;

/// Rule files, and the rules a server runs.
#[derive(Subcommand)]
pub enum RulesCmd {
    /// The rule groups the server at --addr runs (standalone, or an
    /// evaluator member): where each runs, its rules' health, last
    /// evaluation and alerts.
    List {
        /// Only these groups.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Print the reply as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check rule files as `promtool check rules` does.
    Check {
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run `promtool test rules` test files.
    Test {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Whether `cmd` needs a server.
pub fn needs_server(cmd: &RulesCmd) -> bool {
    matches!(cmd, RulesCmd::List { .. })
}

/// `danausctl rules list`: a line per rule under a line per group.
pub async fn list(client: &danaus_client::Client, groups: Vec<String>, json: bool) -> anyhow::Result<()> {
    let reply = client
        .rules()
        .list_rules(danaus_proto::v1::ListRulesRequest { groups })
        .await
        .map_err(|s| anyhow::anyhow!("{} (does --addr run rules: standalone or an evaluator?)", s.message()))?
        .into_inner();
    if json {
        let groups: Vec<serde_json::Value> = reply
            .groups
            .iter()
            .map(|g| {
                serde_json::json!({
                    "tenant": g.tenant, "name": g.name, "interval_ms": g.interval_ms, "limit": g.limit,
                    "evaluator": g.evaluator, "last_evaluation_ms": g.last_evaluation_ms,
                    "evaluation_duration_us": g.evaluation_duration_us, "evaluations": g.evaluations,
                    "failures": g.failures, "missed": g.missed, "caught_up": g.caught_up, "error": g.error,
                    "rules": g.rules.iter().map(|r| serde_json::json!({
                        "kind": r.kind, "name": r.name, "expr": r.expr, "health": r.health,
                        "last_error": r.last_error, "state": r.state, "alerts": r.alerts.len(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&groups)?);
        return Ok(());
    }
    if reply.groups.is_empty() {
        eprintln!("no rule groups");
    }
    for g in &reply.groups {
        let last = if g.last_evaluation_ms == 0 {
            "never".to_owned()
        } else {
            danaus_model::time::format_time(g.last_evaluation_ms.saturating_mul(1_000_000))
        };
        println!(
            "{}  every {}  on {}  last {}  ({} evaluations, {} failed, {} missed, {} caught up)",
            g.name,
            danaus_model::time::format_duration_ns(g.interval_ms.saturating_mul(1_000_000)),
            g.evaluator,
            last,
            g.evaluations,
            g.failures,
            g.missed,
            g.caught_up
        );
        if !g.error.is_empty() {
            println!("  not evaluated: {}", g.error);
        }
        for r in &g.rules {
            let state =
                if r.kind == "alerting" { format!(" {} ({} alerts)", r.state, r.alerts.len()) } else { String::new() };
            println!("  {:<9} {:<32} {}{}", r.kind, r.name, r.health, state);
            if !r.last_error.is_empty() {
                println!("            error: {}", r.last_error);
            }
        }
    }
    Ok(())
}

/// Runs the command; whether everything passed.
pub async fn run(cmd: RulesCmd) -> bool {
    match cmd {
        // Answered by `list`, against a server.
        RulesCmd::List { .. } => false,
        RulesCmd::Check { files } => check(&files),
        RulesCmd::Test { files } => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            danaus_rules::promtool::run(&files, &mut out, &mut err).await == 0
        }
    }
}

/// `promtool check rules`: `Checking FILE`, then `  SUCCESS: N rules
/// found` or `  FAILED:` and every problem; duplicate rules are reported
/// but, as promtool's default lint, do not fail the check.
fn check(files: &[PathBuf]) -> bool {
    let mut ok = true;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    for f in files {
        let _ = writeln!(out, "Checking {}", f.display());
        match danaus_rules::file::parse_file(f) {
            Ok(groups) => {
                let dups = danaus_rules::file::duplicates(&groups);
                if dups.is_empty() {
                    let n: usize = groups.groups.iter().map(|g| g.rules.len()).sum();
                    let _ = writeln!(out, "  SUCCESS: {n} rules found");
                } else {
                    let mut msg = format!("lint error {} duplicate rule(s) found.\n", dups.len());
                    for (metric, labels) in dups {
                        msg.push_str(&format!("Metric: {metric}\nLabel(s):\n"));
                        for (k, v) in labels {
                            msg.push_str(&format!("\t{k}: {v}\n"));
                        }
                    }
                    msg.push_str("Might cause inconsistency while recording expressions");
                    let _ = writeln!(err, "  FAILED:\n{msg}");
                }
            }
            Err(errs) => {
                ok = false;
                let _ = writeln!(err, "  FAILED:");
                for e in errs {
                    let _ = writeln!(err, "{e}");
                }
            }
        }
        let _ = writeln!(out);
    }
    ok
}
