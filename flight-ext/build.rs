//! Generates the `lakehouse.v1` types from `proto/` with a vendored `protoc`,
//! so building needs no system protobuf compiler, plus their proto3 JSON mapping
//! (pbjson), so every message may also travel as JSON.

use std::path::PathBuf;

const PROTOS: [&str; 11] = [
    "../proto/lakehouse/v1/sql.proto",
    "../proto/lakehouse/v1/session.proto",
    "../proto/lakehouse/v1/jobs.proto",
    "../proto/lakehouse/v1/ingest.proto",
    "../proto/lakehouse/v1/pii.proto",
    "../proto/lakehouse/v1/vector.proto",
    "../proto/lakehouse/v1/bucket.proto",
    "../proto/lakehouse/v1/table.proto",
    "../proto/lakehouse/v1/worker.proto",
    "../proto/lakehouse/v1/lance_worker.proto",
    "../proto/lakehouse/v1/profile.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out.join("lakehouse_descriptors.bin");
    // Ordered maps: a message always encodes to the same bytes (handles, tests, fuzzing).
    prost_build::Config::new()
        .btree_map(["."])
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&PROTOS, &["../proto"])?;
    let set = std::fs::read(&descriptors)?;
    // Every field is written, defaults too: a search with no hits has `"hits": []`
    // and version 0 has `"version": 0`, so clients can index replies without guards.
    pbjson_build::Builder::new()
        .register_descriptors(&set)?
        .btree_map(["."])
        .emit_fields()
        .build(&[".lakehouse"])?;
    Ok(())
}
