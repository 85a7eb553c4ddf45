//! `danausctl rules`: rule files checked and tested on this machine, as
//! `promtool check rules` and `promtool test rules` do (same reports,
//! same exit codes), so a team's CI can swap one for the other.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Subcommand;

/// Rule files.
#[derive(Subcommand)]
pub enum RulesCmd {
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

/// Runs the command; whether everything passed.
pub async fn run(cmd: RulesCmd) -> bool {
    match cmd {
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
