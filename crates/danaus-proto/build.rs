//! Generates the gRPC code (real and simulated) from `proto/danaus/v1`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!: a compiler cache may hand
    // out a build script compiled in another checkout.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files: Vec<_> = ["types", "schema", "ingest", "read", "query", "raft", "zone", "config", "rules"]
        .iter()
        .map(|f| root.join(format!("danaus/v1/{f}.proto")))
        .collect();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_build::configure().file_descriptor_set_path(out.join("danaus_descriptor.bin")).compile_protos_with_config(
        config,
        &files,
        &[root],
    )?;
    Ok(())
}
