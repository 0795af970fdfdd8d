//! Link the host against llama.cpp's shared libraries so that it finds them at run time, tell
//! the code where the build put ggml's CPU backend variants, and build the chat-template
//! sandbox (`template-sandbox/`, a WebAssembly module the host embeds).
//!
//! `llama-cpp-sys-2` (feature `dynamic-backends`) builds `libllama`/`libggml*` as shared
//! libraries and one `libggml-cpu-<variant>.so` per x86-64 level into `$OUT_DIR/backends`, which
//! it passes on as `DEP_LLAMA_BACKENDS_DIR`. The binary looks for its libraries first next to
//! itself (`$ORIGIN/lib`, the layout `scripts/package.sh` writes), then in the build tree.
//! Crates that embed the host get the library folder as `DEP_TABAGENT_HOST_LIB_DIR` and can do
//! the same in their own build script:
//!
//! ```ignore
//! if let Ok(lib) = std::env::var("DEP_TABAGENT_HOST_LIB_DIR") {
//!     println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
//! }
//! ```

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    build_template_sandbox();
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_BACKENDS_DIR");
    let Ok(backends) = std::env::var("DEP_LLAMA_BACKENDS_DIR") else {
        return;
    };
    println!("cargo:rustc-env=TABAGENT_BUILD_BACKENDS_DIR={backends}");
    // CMake installs the libraries to lib/ or, on some distributions, lib64/.
    let out = std::path::Path::new(&backends).parent().expect("backends folder has a parent");
    let lib = ["lib", "lib64"]
        .iter()
        .map(|d| out.join(d))
        .find(|d| d.join("libllama.so").exists() || d.join("libllama.dylib").exists())
        .unwrap_or_else(|| out.join("lib"));
    // For crates that embed the host: DEP_TABAGENT_HOST_LIB_DIR.
    println!("cargo:lib_dir={}", lib.display());
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/lib:{}", lib.display());
    } else if os == "macos" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,@executable_path/lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}

/// Build `template-sandbox` for `wasm32-unknown-unknown` with a cargo of its own (its own
/// workspace, lock file and target folder under `OUT_DIR`), and tell the code where the module
/// is (`TABAGENT_TEMPLATE_SANDBOX`).
fn build_template_sandbox() {
    use std::path::PathBuf;
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("template-sandbox");
    for f in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", dir.join(f).display());
    }
    let target_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("sandbox");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--target", "wasm32-unknown-unknown"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers are for the host's target, not this one.
    for k in
        ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "RUSTC_WORKSPACE_WRAPPER"]
    {
        cmd.env_remove(k);
    }
    let status = cmd.status().expect("cannot run cargo for the template sandbox");
    assert!(
        status.success(),
        "the template sandbox did not build for wasm32-unknown-unknown \
         (rustup target add wasm32-unknown-unknown; scripts/setup.sh does)"
    );
    let wasm = target_dir.join("wasm32-unknown-unknown/release/tabagent_template_sandbox.wasm");
    println!("cargo:rustc-env=TABAGENT_TEMPLATE_SANDBOX={}", wasm.display());
}
