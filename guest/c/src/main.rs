//! `tabagent-componentize-c`: the two steps of building a C guest that Debian's clang and
//! wasi-libc do not do themselves.
//!
//! ```sh
//! tabagent-componentize-c bindings WIT_DIR WORLD OUT_DIR   # C bindings (wit-bindgen's C generator)
//! clang --target=wasm32-wasi … app.c OUT_DIR/*.c OUT_DIR/*_component_type.o -o app.core.wasm
//! tabagent-componentize-c component app.core.wasm app.wasm  # the module as a component
//! ```
//!
//! wasi-libc targets WASI preview 1; `component` adapts those imports to preview 2 with
//! wasmtime's own adapter (the `reactor` one: the module exports `wasi:cli/run` itself, through
//! the bindings, and is built with `-mexec-model=reactor`).

use anyhow::{Context as _, bail};
use std::path::Path;
use wit_bindgen_core::wit_parser::Resolve;

fn bindings(wit: &Path, world: &str, out: &Path) -> anyhow::Result<()> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_dir(wit).with_context(|| format!("reading {}", wit.display()))?;
    let id = resolve.select_world(&[pkg], Some(world))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default().build().generate(&mut resolve, id, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, contents) in files.iter() {
        std::fs::write(out.join(name), contents)
            .with_context(|| format!("writing {}", out.join(name).display()))?;
    }
    Ok(())
}

fn component(module: &Path, out: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let adapter = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)?
        .adapter("wasi_snapshot_preview1", adapter)?
        .validate(true)
        .encode()?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["bindings", wit, world, out] => bindings(Path::new(wit), world, Path::new(out)),
        ["component", module, out] => component(Path::new(module), Path::new(out)),
        _ => bail!(
            "usage: tabagent-componentize-c bindings WIT_DIR WORLD OUT_DIR\n       tabagent-componentize-c component CORE.wasm OUT.wasm"
        ),
    }
}
