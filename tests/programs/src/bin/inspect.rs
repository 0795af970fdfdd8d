//! Inspects every granted model through `models.inspect` (nothing loaded), then, for the ones
//! this host runs, loads them and generates greedily from the first argument (16 tokens). Prints
//! one JSON object per model.

use serde_json::json;
use tabagent_guest::Model;

fn main() {
    let prompt = std::env::args().nth(1).unwrap_or_else(|| "Once upon a time".into());
    let mut out = Vec::new();
    for name in tabagent_guest::granted_models() {
        let report = match tabagent_guest::inspect(&name) {
            Ok(r) => r,
            Err(e) => {
                out.push(json!({"name": name, "error": tabagent_test_programs::error_json(&e)}));
                continue;
            }
        };
        let types: Vec<_> = report
            .tensor_types
            .iter()
            .map(|t| json!({"name": t.name, "tensors": t.tensors, "bytes": t.bytes}))
            .collect();
        let mut v = json!({
            "name": name,
            "format": report.format,
            "architecture": report.architecture,
            "file_type": report.file_type,
            "tensor_types": types,
            "parameter_count": report.parameter_count,
            "bitnet": report.bitnet,
            "task": report.task,
            "supported": report.supported,
            "route": report.route,
        });
        if report.supported {
            v["generated"] = match Model::load(&name)
                .and_then(|m| m.complete(&prompt).greedy().max_tokens(16).generate())
            {
                Ok(g) => json!({"text": g.text, "tokens": g.tokens}),
                Err(e) => json!({"error": tabagent_test_programs::error_json(&e)}),
            };
        }
        out.push(v);
    }
    tabagent_test_programs::emit(&json!(out));
}
