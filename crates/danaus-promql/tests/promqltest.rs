//! Runs every `tests/cases/*.test` script against the in-memory backend,
//! with range functions pushed down to storage and without.

use std::path::Path;

use danaus_promql::promqltest::{run, MemBackend};
use danaus_promql::Options;

#[tokio::test]
async fn every_case_file_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "case files missing from {}", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        let script = std::fs::read_to_string(f).expect("readable");
        for push_down in [true, false] {
            let mut backend =
                MemBackend { options: Options { push_down, ..Options::default() }, ..MemBackend::default() };
            if let Err(e) = run(&script, &mut backend).await {
                failures.push(format!("{} (push_down {push_down}): {e}", f.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
