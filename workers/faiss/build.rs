//! Compiles the C shim over Faiss's C++ API (`src/shim.cpp`) and links Faiss with
//! its BLAS, LAPACK and OpenMP, when Faiss is installed (Debian: `apt-get install
//! libfaiss-dev libopenblas-dev`; elsewhere set `FAISS_DIR` to its install prefix).
//! Without it the worker still builds, with `cfg(not(faiss))`: it then answers every
//! index call with an error that says how to install Faiss.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(faiss)");
    println!("cargo::rerun-if-changed=src/shim.cpp");
    println!("cargo::rerun-if-env-changed=FAISS_DIR");
    let prefixes: Vec<PathBuf> = match std::env::var_os("FAISS_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec![PathBuf::from("/usr"), PathBuf::from("/usr/local")],
    };
    let arch_lib = format!(
        "lib/{}-linux-gnu",
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default()
    );
    let found = prefixes.iter().find_map(|prefix| {
        let header = prefix.join("include/faiss/index_factory.h");
        if !header.is_file() {
            return None;
        }
        ["lib", &arch_lib, "lib64"].iter().find_map(|lib| {
            let dir = prefix.join(lib);
            let has = |name: &str| dir.join(name).is_file();
            (has("libfaiss.a") || has("libfaiss.so")).then(|| (prefix.join("include"), dir))
        })
    });
    let Some((include, lib)) = found else {
        println!(
            "cargo::warning=Faiss not found (no include/faiss/index_factory.h with libfaiss under \
             {prefixes:?}): the worker is built without it and refuses index calls. Install it \
             (Debian: apt-get install libfaiss-dev libopenblas-dev) or set FAISS_DIR, then rebuild."
        );
        return;
    };
    println!(
        "cargo::rerun-if-changed={}",
        include.join("faiss/index_factory.h").display()
    );
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("src/shim.cpp")
        .include(&include)
        .flag_if_supported("-fopenmp")
        .warnings(false)
        .compile("lakehouse_faiss_shim");
    println!("cargo::rustc-link-search=native={}", lib.display());
    if lib.join("libfaiss.a").is_file() {
        println!("cargo::rustc-link-lib=static=faiss");
    } else {
        println!("cargo::rustc-link-lib=dylib=faiss");
    }
    for dylib in ["blas", "lapack", "gomp", "stdc++"] {
        println!("cargo::rustc-link-lib=dylib={dylib}");
    }
    println!("cargo::rustc-cfg=faiss");
}
