//! End-to-end tests: real guest components through `tabagent-host`, against the real SmolLM2
//! model (most modules) or the fake engine (`fast`, no model needed).

/// One constant per guest component, generated at build time from `tests/programs/src/bin` and
/// the example apps. A guest that no test here runs is dead code, which fails the build.
#[deny(dead_code)]
mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests_tested.rs"));
}

mod batching;
mod bitnet;
mod browser;
mod cli;
mod cli_hub;
mod concurrency;
mod constraints;
mod errors;
mod fast;
mod generation;
mod guide;
mod hub;
mod languages;
mod limits;
mod models;
mod native_messaging;
mod nn;
mod probe;
mod remote;
mod serve;
mod templates;
mod tools;
