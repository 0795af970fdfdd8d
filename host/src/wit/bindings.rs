//! The host bindings generated from `wit/` (world `llm`): async, with WIT resources mapped to
//! [`super::resources`] and the WIT `error` to [`super::error::HostError`]. Private to the glue.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "llm",
    imports: { default: async | trappable },
    with: {
        "tabagent:llm/models.model": crate::wit::resources::ModelResource,
        "tabagent:llm/inference.session": crate::wit::resources::SessionResource,
        "tabagent:llm/inference.completion": crate::wit::resources::CompletionResource,
        "tabagent:llm/pulls.pull": crate::wit::resources::PullResource,
    },
    trappable_error_type: {
        "tabagent:llm/types.error" => crate::wit::error::HostError,
    },
});

pub use tabagent::llm::{hardware, inference, models, pulls, types};
