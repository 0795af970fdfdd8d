//! Builds the guest components the end-to-end tests run (tests/programs and examples/chat) for
//! wasm32-wasip2, with a nested cargo in its own target folder, and tells the tests where they are.
//! Also gives the test executables a run path to llama.cpp's shared libraries.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    // The test executables link llama.cpp's shared libraries: run path to the build's copy, so
    // they also run outside `cargo test` (see host/build.rs).
    if let Ok(lib) = std::env::var("DEP_TABAGENT_HOST_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target = out.ancestors().nth(4).unwrap().join("wasm-guests");
    for dir in ["guest", "wit", "tests/programs", "examples"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--locked"])
        .args(["-p", "tabagent-test-programs", "-p", "chat", "-p", "router", "-p", "openai-server"])
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        // Under `cargo clippy` these point at clippy-driver; the guests get a plain build.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .status()
        .expect("cannot run cargo to build the test guests");
    assert!(
        status.success(),
        "building the test guests for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
    let guests = target.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=TABAGENT_GUESTS_DIR={}", guests.display());
    write_guest_list(&root, &guests, &out);
}

/// Generate one constant per guest component (every `tests/programs/src/bin/*.rs`, and the
/// example apps): `$OUT_DIR/guests.rs`, public, for the library; `$OUT_DIR/guests_tested.rs`,
/// crate-private, for the end-to-end test binary, which includes it under `deny(dead_code)` so
/// that a guest no test runs, or a misspelt guest name, fails the build.
fn write_guest_list(root: &std::path::Path, guests: &std::path::Path, out: &std::path::Path) {
    let bins = root.join("tests/programs/src/bin");
    let mut names: Vec<String> = std::fs::read_dir(&bins)
        .expect("tests/programs/src/bin")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_string))
        .collect();
    names.extend(EXAMPLES.iter().map(|s| s.to_string()));
    names.sort();
    let consts = |vis: &str, ty: &str| {
        let mut s = String::new();
        for name in &names {
            let path = guests.join(format!("{name}.wasm")).display().to_string();
            let ident = name.to_uppercase().replace('-', "_");
            s.push_str(&format!(
                "/// The `{name}` guest component.\n{vis} const {ident}: {ty} = {ty} {{ name: {name:?}, path: {path:?} }};\n"
            ));
        }
        s
    };
    let list = names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    let lib = format!(
        "{}\n/// Every guest component's name.\npub const ALL: &[&str] = &[{list}];\n",
        consts("pub", "crate::Guest")
    );
    std::fs::write(out.join("guests.rs"), lib).expect("write guests.rs");
    std::fs::write(out.join("guests_tested.rs"), consts("pub(crate)", "tabagent_tests::Guest"))
        .expect("write guests_tested.rs");
}

/// Example components built with the test guests (each a package, and a binary or library, of
/// that name; a library's file name has `_` for the package name's `-`).
const EXAMPLES: &[&str] = &["chat", "router", "openai_server"];
