//! An OpenAI-compatible HTTP API as a component: `GET /v1/models`, `POST /v1/chat/completions`,
//! `POST /v1/completions` and `POST /v1/embeddings`, with server-sent events for `stream: true`,
//! on the `tabagent:llm` interfaces. It exports `wasi:http/incoming-handler`, so
//! `tabagent-host serve openai-server.wasm --model NAME=…` serves it, one instance per request.
//!
//! Errors have OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) and status:
//! 400 for bad JSON or fields, 404 for an unknown model or route, 405 for a wrong method, 500
//! only when generation itself fails. The model names are the names the user granted.

mod api;
mod handlers;
mod http;
mod tools;

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package tabagent:openai-server;
            world openai-server {
                include tabagent:llm/llm@0.2.0;
                import wasi:random/random@0.2.12;
                export wasi:http/incoming-handler@0.2.12;
            }
        ",
        path: "../../wit",
        world: "tabagent:openai-server/openai-server",
        with: {
            "tabagent:llm/types@0.2.0": tabagent_guest::bindings::tabagent::llm::types,
            "tabagent:llm/hardware@0.2.0": tabagent_guest::bindings::tabagent::llm::hardware,
            "tabagent:llm/models@0.2.0": tabagent_guest::bindings::tabagent::llm::models,
            "tabagent:llm/inference@0.2.0": tabagent_guest::bindings::tabagent::llm::inference,
            "tabagent:llm/pulls@0.2.0": tabagent_guest::bindings::tabagent::llm::pulls,
        },
        generate_all,
    });
}

use api::ApiError;
use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{IncomingRequest, Method, ResponseOutparam};

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = request.method();
        let path = request.path_with_query().unwrap_or_default();
        let path = path.split('?').next().unwrap_or("").trim_end_matches('/').to_string();
        let body = match http::read_body(&request) {
            Ok(b) => b,
            Err(e) => return http::send_error(out, &e),
        };
        const POSTS: [&str; 3] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];
        let model_path = path.strip_prefix("/v1/models/");
        match (path.as_str(), &method) {
            ("/v1/chat/completions", Method::Post) => handlers::chat(&body, out),
            ("/v1/completions", Method::Post) => handlers::completions(&body, out),
            ("/v1/embeddings", Method::Post) => handlers::embeddings(&body, out),
            ("/v1/models", Method::Get) => handlers::models(out),
            (_, Method::Get) if model_path.is_some() => {
                handlers::model(model_path.unwrap_or_default(), out)
            }
            (p, _) if POSTS.contains(&p) => http::send_error(out, &ApiError::method(p, "POST")),
            (p, _) if p == "/v1/models" || model_path.is_some() => {
                http::send_error(out, &ApiError::method(p, "GET"))
            }
            (p, _) => http::send_error(out, &ApiError::route(p)),
        }
    }
}

bindings::export!(Component with_types_in bindings);
