//! Differential: every `tests/promtool/*_test.yml` through this crate's
//! runner (what `danausctl rules test` runs) gives what `promtool test
//! rules` 2.42 gave — recorded in `<name>.golden` by `tests/promtool/regen`
//! — exit code, report and failures, byte for byte. Failing files are
//! there on purpose: the actual values in a failure must match too.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

#[tokio::test(flavor = "current_thread")]
async fn every_test_file_answers_as_promtool_does() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/promtool");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_test.yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "only {} test files", files.len());
    let mut mismatches = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let golden = std::fs::read_to_string(dir.join(name.replace("_test.yml", ".golden")))
            .unwrap_or_else(|e| panic!("{name}: no golden file ({e}); run tests/promtool/regen"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let rc = danaus_rules::promtool::run(std::slice::from_ref(f), &mut out, &mut err).await;
        // promtool was run from the directory, on the bare file name.
        let prefix = format!("{}/", dir.display());
        let ours = format!(
            "rc={rc}\n--- stdout\n{}--- stderr\n{}",
            String::from_utf8(out).unwrap().replace(&prefix, ""),
            String::from_utf8(err).unwrap().replace(&prefix, "")
        );
        if ours != golden {
            mismatches.push(format!("== {name}\n-- promtool:\n{golden}\n-- danaus:\n{ours}"));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} files differ:\n{}", mismatches.len(), files.len(), mismatches.join("\n"));
}
