//! A guest written against the standard `wasi:nn` interface alone (no `tabagent:llm`): loads
//! the graph named by its first argument with `load-by-name`, computes on the prompt (second
//! argument) with the options JSON (third, optional), and prints the output text, or the error,
//! as JSON.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package tabagent:nn-guest;
            world nn-guest {
                import wasi:nn/graph@0.2.0-rc-2024-10-28;
                import wasi:nn/inference@0.2.0-rc-2024-10-28;
                import wasi:nn/tensor@0.2.0-rc-2024-10-28;
                import wasi:nn/errors@0.2.0-rc-2024-10-28;
            }
        ",
        path: "../../wit",
        world: "tabagent:nn-guest/nn-guest",
        generate_all,
    });
}

use bindings::wasi::nn::errors::Error;
use bindings::wasi::nn::graph;
use bindings::wasi::nn::tensor::{Tensor, TensorType};
use serde_json::json;

fn error(e: Error) -> serde_json::Value {
    json!({"code": format!("{:?}", e.code()), "message": e.data()})
}

fn run(name: &str, prompt: &str, options: Option<&str>) -> Result<String, serde_json::Value> {
    let g = graph::load_by_name(name).map_err(error)?;
    let ctx = g.init_execution_context().map_err(error)?;
    let text = |s: &str| Tensor::new(&[s.len() as u32], TensorType::U8, s.as_bytes());
    let mut inputs = vec![("prompt".to_string(), text(prompt))];
    if let Some(o) = options {
        inputs.push(("options".to_string(), text(o)));
    }
    let outputs = ctx.compute(inputs).map_err(error)?;
    let (name, out) = outputs.into_iter().next().ok_or_else(|| json!("no output"))?;
    assert_eq!(name, "output");
    assert_eq!(out.ty(), TensorType::U8);
    Ok(String::from_utf8(out.data()).expect("UTF-8 output"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = run(&args[1], &args[2], args.get(3).map(String::as_str));
    tabagent_test_programs::emit(&match result {
        Ok(text) => json!({"text": text}),
        Err(e) => json!({"error": e}),
    });
}
