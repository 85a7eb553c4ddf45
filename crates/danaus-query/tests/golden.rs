//! Golden-file tests of the query language: every `tests/cases/*.query`
//! runs over its data set (`tests/data/*.data`) and its output must equal
//! the `.expected` file beside it. Each case also runs with the data spread
//! over two zones of two leaves, where partial aggregates travel between
//! phases, and must give the same answer; and its query must survive
//! parse → print → parse.
//!
//! A case file starts with header lines:
//!
//! ```text
//! -- what the case shows
//! -- data: basic            (tests/data/basic.data)
//! -- range: 0s 60s 10s      (start, end and step, offsets from T0)
//! ```
//!
//! To write the expected files after a deliberate change, run with
//! `DANAUS_BLESS=1` and review the diff.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{duration, single, spread, table_text, DataSet, T0, TENANT};
use danaus_query::{syntax, QueryRange, RunOptions};

struct Case {
    name: String,
    data: String,
    range: QueryRange,
    query: String,
}

fn load(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    let (mut data, mut range) = (None, None);
    let mut query = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("--") {
            let h = h.trim();
            if let Some(d) = h.strip_prefix("data:") {
                data = Some(d.trim().to_owned());
            } else if let Some(r) = h.strip_prefix("range:") {
                let w: Vec<&str> = r.split_whitespace().collect();
                range = Some(QueryRange {
                    start: T0 + duration(w[0]),
                    end: T0 + duration(w[1]),
                    step: w.get(2).map_or(danaus_query::DEFAULT_STEP, |s| duration(s)),
                });
            }
        } else {
            query.push(line);
        }
    }
    Case {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        data: data.unwrap_or_else(|| panic!("{}: no `-- data:` line", path.display())),
        range: range.unwrap_or_else(|| panic!("{}: no `-- range:` line", path.display())),
        query: query.join("\n").trim().to_owned(),
    }
}

async fn run(engine: &danaus_query::Engine, case: &Case) -> String {
    match engine.collect(TENANT, &case.query, case.range, RunOptions::default()).await {
        Ok((t, report)) => {
            assert!(report.completeness.is_complete(), "{}: {:?}", case.name, report.completeness);
            table_text(&t)
        }
        Err(e) => format!("error: {}\n", e.render(&case.query)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let bless = std::env::var_os("DANAUS_BLESS").is_some();
    let mut paths: Vec<_> = std::fs::read_dir(dir.join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "query"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    for path in &paths {
        let case = load(path);
        let data =
            DataSet::parse(&std::fs::read_to_string(dir.join("data").join(format!("{}.data", case.data))).unwrap());
        let got = run(&single(&data).await, &case).await;
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
        } else {
            let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if got != want {
                failures.push(format!("{}: output differs\n--- expected\n{want}--- got\n{got}", case.name));
            }
        }
        if !got.starts_with("error:") {
            for seed in 0..3 {
                let distributed = run(&spread(&data, 2, 2, seed).await, &case).await;
                if distributed != got {
                    failures.push(format!(
                        "{}: spread over 2 zones × 2 leaves (seed {seed}) differs\n--- one leaf\n{got}--- spread\n{distributed}",
                        case.name
                    ));
                }
            }
        }
        if let Ok(q) = syntax::parse(&case.query) {
            let printed = q.to_string();
            match syntax::parse(&printed) {
                Ok(again) if again == q => {}
                other => failures.push(format!("{}: printed as {printed:?}, which parses to {other:?}", case.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(paths.len() >= 60, "only {} golden cases", paths.len());
}
