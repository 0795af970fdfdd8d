//! The benchmark links llama.cpp's shared libraries: give it a run path to the build's copy
//! (see host/build.rs), so that it also runs outside `cargo run`.

fn main() {
    if let Ok(lib) = std::env::var("DEP_TABAGENT_HOST_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
