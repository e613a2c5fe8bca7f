//! Generates the worker protocol's messages from the server's `proto/` (the one source
//! of truth; this workspace cannot depend on `lakehouse-flight-ext`, which is on
//! another Arrow) with a vendored `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../../proto/lakehouse/v1/worker.proto",
        "../../proto/lakehouse/v1/lance_worker.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    println!("cargo:rerun-if-changed=../../flight-ext/src/worker_actions.rs");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    prost_build::Config::new()
        .btree_map(["."])
        .compile_protos(&protos, &["../../proto"])?;
    Ok(())
}
