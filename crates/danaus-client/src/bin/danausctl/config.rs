//! `danausctl config`: configuration as code against the config service
//! (a config-server member, a zone's config mirror, or standalone's port).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use clap::Subcommand;
use danaus_client::time::format_time;
use danaus_client::Client;
use danaus_config::files::{self, Document};
use danaus_config::{ConfigState, ConfigView, Object, ObjectKey, Outcome, Version};
use danaus_proto::v1 as pb;

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Check a configuration directory: syntax, types, each object, and
    /// every change against the live configuration's compatibility rules.
    Validate {
        /// The directory (or one file).
        #[arg(short = 'f', long)]
        dir: PathBuf,
        /// Check without a server: everything but the live configuration.
        #[arg(long)]
        offline: bool,
    },
    /// Show, per object, what applying a directory would change.
    Diff {
        /// The directory (or one file).
        #[arg(short = 'f', long)]
        dir: PathBuf,
    },
    /// Apply a directory, all or nothing; applying it twice changes nothing.
    Apply {
        /// The directory (or one file).
        #[arg(short = 'f', long)]
        dir: PathBuf,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
        /// Why (kept in the history).
        #[arg(long, short = 'm', default_value = "")]
        message: String,
    },
    /// Write the live configuration as a directory (export → apply is a no-op).
    Export {
        /// Where (created; files in it are replaced).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
    /// List the versions that changed this tenant's configuration.
    History {
        /// At most this many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Make the configuration what it was at VERSION, as a new version.
    Rollback {
        /// The version to go back to.
        version: u64,
        /// Why (kept in the history).
        #[arg(long, short = 'm', default_value = "")]
        message: String,
    },
}

/// Who is changing the configuration: `$USER@host`.
fn author() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// The documents of `dir` (a directory or one file), or every error.
fn read(dir: &Path) -> anyhow::Result<Vec<Document>> {
    let docs = if dir.is_file() {
        let text = std::fs::read_to_string(dir).with_context(|| format!("reading {}", dir.display()))?;
        files::parse(dir, &text)
    } else {
        files::read_dir(dir)
    };
    docs.map_err(|errors| report(&errors))
}

fn report(errors: &[files::FileError]) -> anyhow::Error {
    for e in errors {
        eprintln!("{e}");
    }
    anyhow!(
        "{} error{} in the configuration; nothing was applied",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    )
}

async fn live(client: &Client) -> anyhow::Result<ConfigView> {
    let r = client.config().get(pb::GetConfigRequest {}).await.map_err(|s| anyhow!("{}", s.message()))?.into_inner();
    let objects: Vec<Object> = serde_json::from_slice(&r.objects_json).context("the server's objects")?;
    let tenant = String::new();
    // Keys are rebuilt from the objects; the tenant does not matter for
    // checking this tenant's changes.
    Ok(ConfigView { version: r.version, objects: objects.into_iter().map(|o| (o.key(&tenant), o)).collect() })
}

/// Re-keys a live view (objects keyed for the empty tenant) for `tenant`.
fn for_tenant(view: ConfigView, tenant: &str) -> ConfigView {
    ConfigView { version: view.version, objects: view.objects.into_values().map(|o| (o.key(tenant), o)).collect() }
}

fn tenant_of(t: Option<&str>) -> String {
    t.unwrap_or(danaus_model::DEFAULT_TENANT).to_owned()
}

/// `validate --offline`: everything that needs no server.
pub fn validate_offline(dir: &Path, tenant: Option<&str>) -> anyhow::Result<()> {
    let docs = read(dir)?;
    let errors = files::validate(&docs, &tenant_of(tenant), &ConfigState::default());
    if !errors.is_empty() {
        return Err(report(&errors));
    }
    println!("{} objects valid (not checked against the live configuration)", docs.len());
    Ok(())
}

/// Every document of one tenant (the one asked for): documents naming
/// another tenant are refused, one request applies one tenant.
fn objects(docs: &[Document], tenant: &str) -> anyhow::Result<Vec<Object>> {
    if let Some(d) = docs.iter().find(|d| d.tenant.as_deref().is_some_and(|t| t != tenant)) {
        bail!(
            "{}: names tenant {:?}, but this command applies tenant {tenant:?}; use --tenant",
            d.at,
            d.tenant.as_deref().unwrap_or_default()
        );
    }
    Ok(docs.iter().map(|d| d.object.clone()).collect())
}

/// Checks `dir` against the live configuration; its objects and the view.
async fn checked(client: &Client, dir: &Path, tenant: &str) -> anyhow::Result<(Vec<Object>, ConfigView)> {
    let docs = read(dir)?;
    let view = for_tenant(live(client).await?, tenant);
    let errors = files::validate(&docs, tenant, &ConfigState::from_view(view.clone()));
    if !errors.is_empty() {
        return Err(report(&errors));
    }
    Ok((objects(&docs, tenant)?, view))
}

fn print_outcome(o: &Outcome, dry_run: bool) {
    for (k, verb) in &o.changes {
        let verb = if dry_run { format!("would be {verb}") } else { verb.clone() };
        println!("{}: {verb}", describe(k));
    }
    for (k, why) in &o.kept {
        println!("{}: kept ({why})", describe(k));
    }
    match (o.changed, dry_run) {
        (false, _) => println!("no changes (version {})", o.version),
        (true, true) => println!("would make version {}", o.version + 1),
        (true, false) => println!("version {}", o.version),
    }
}

fn describe(k: &ObjectKey) -> String {
    format!("{} {}", k.kind, k.name)
}

/// Lines of `a` and `b` as a unified-style diff (`-` removed, `+` added).
fn line_diff(a: &str, b: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // Longest common subsequence table; configuration objects are small.
    let mut l = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            l[i][j] = if a[i] == b[j] { l[i + 1][j + 1] + 1 } else { l[i + 1][j].max(l[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || l[i][j + 1] >= l[i + 1][j]) {
            out.push(format!("+ {}", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a[i]));
            i += 1;
        }
    }
    out
}

pub async fn run(client: &Client, tenant: Option<&str>, cmd: ConfigCmd) -> anyhow::Result<()> {
    let tenant = tenant_of(tenant);
    match cmd {
        ConfigCmd::Validate { dir, offline } => {
            if offline {
                return validate_offline(&dir, Some(&tenant));
            }
            let (objects, view) = checked(client, &dir, &tenant).await?;
            println!("{} objects valid against version {}", objects.len(), view.version);
        }
        ConfigCmd::Diff { dir } => {
            let (objects, view) = checked(client, &dir, &tenant).await?;
            let plan = ConfigState::from_view(view).plan(&tenant, &objects).map_err(|r| anyhow!("{r}"))?;
            for c in &plan {
                let render = |o: &Option<Object>| o.as_ref().map(|o| files::render(o, None)).transpose();
                let (before, after) =
                    (render(&c.before).map_err(|e| anyhow!(e))?, render(&c.after).map_err(|e| anyhow!(e))?);
                println!("{} {} ({}):", c.key.kind, c.key.name, c.verb());
                for line in line_diff(before.as_deref().unwrap_or(""), after.as_deref().unwrap_or("")) {
                    if !line.starts_with("  ") {
                        println!("  {line}");
                    }
                }
            }
            if plan.is_empty() {
                println!("no changes");
            }
        }
        ConfigCmd::Apply { dir, dry_run, message } => {
            let (objects, view) = checked(client, &dir, &tenant).await?;
            let req = pb::ApplyConfigRequest {
                objects_json: serde_json::to_vec(&objects)?,
                author: author(),
                message,
                dry_run,
                expect_version: view.version,
            };
            let r = client.config().apply(req).await.map_err(|s| anyhow!("{}", s.message()))?.into_inner();
            let o: Outcome = serde_json::from_slice(&r.outcome_json).context("the server's outcome")?;
            print_outcome(&o, dry_run);
        }
        ConfigCmd::Export { out } => {
            let view = for_tenant(live(client).await?, &tenant);
            let files = files::export(&view, &tenant).map_err(|e| anyhow!(e))?;
            for (path, text) in &files {
                let f = out.join(path);
                if let Some(parent) = f.parent() {
                    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::write(&f, text).with_context(|| format!("writing {}", f.display()))?;
            }
            println!("version {} written to {} ({} files)", view.version, out.display(), files.len());
        }
        ConfigCmd::History { limit } => {
            let r = client
                .config()
                .history(pb::ConfigHistoryRequest { limit })
                .await
                .map_err(|s| anyhow!("{}", s.message()))?
                .into_inner();
            for j in &r.versions_json {
                let v: Version = serde_json::from_slice(j).context("a version from the server")?;
                let what: Vec<String> =
                    v.changes.iter().map(|c| format!("{} {} {}", c.verb(), c.key.kind, c.key.name)).collect();
                println!(
                    "{:>6}  {}  {}  {}",
                    v.number,
                    format_time(v.time),
                    v.author,
                    if v.message.is_empty() { "-" } else { &v.message }
                );
                for w in what {
                    println!("        {w}");
                }
            }
        }
        ConfigCmd::Rollback { version, message } => {
            let req = pb::RollbackConfigRequest { to_version: version, author: author(), message };
            let r = client.config().rollback(req).await.map_err(|s| anyhow!("{}", s.message()))?.into_inner();
            let o: Outcome = serde_json::from_slice(&r.outcome_json).context("the server's outcome")?;
            print_outcome(&o, false);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_diff_keeps_common_lines_and_marks_the_rest() {
        let d = line_diff("a\nb\nc\n", "a\nc\nd\n");
        assert_eq!(d, vec!["  a", "- b", "  c", "+ d"]);
    }
}
