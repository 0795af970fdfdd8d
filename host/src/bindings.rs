//! Host bindings generated from `wit/` (the `llm` world). WIT resources map to this crate's
//! types, and the WIT `error` variant to [`crate::ctx::LlmError`], so that host bugs trap and
//! guest mistakes come back as error values.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "llm",
    imports: { default: async | trappable },
    with: {
        "tabagent:llm/models.model": crate::ctx::ModelResource,
        "tabagent:llm/inference.session": crate::ctx::SessionResource,
        "tabagent:llm/inference.completion": crate::ctx::CompletionResource,
    },
    trappable_error_type: {
        "tabagent:llm/types.error" => crate::ctx::LlmError,
    },
});

pub use tabagent::llm::{hardware, inference, models, types};
