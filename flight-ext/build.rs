//! Generates the `lakehouse.v1` types from `proto/` with a vendored `protoc`,
//! so building needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let protos = [
        "../proto/lakehouse/v1/sql.proto",
        "../proto/lakehouse/v1/session.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    prost_build::compile_protos(&protos, &["../proto"])?;
    Ok(())
}
