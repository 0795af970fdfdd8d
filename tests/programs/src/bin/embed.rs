//! Embeds its arguments and prints the vectors' lengths, norms and pairwise cosine similarities.

use serde_json::json;
use tabagent_guest::Model;

fn main() {
    let model = Model::load("smollm2").expect("load");
    let texts: Vec<String> = std::env::args().skip(1).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = model.embed(&refs).expect("embed");
    let dot = |a: &[f32], b: &[f32]| {
        a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>()
    };
    let cos: Vec<Vec<f64>> =
        vectors.iter().map(|a| vectors.iter().map(|b| dot(a, b)).collect()).collect();
    let empty = tabagent_test_programs::result_json(model.embed(&[""]), |v| json!(v.len()));
    let none = tabagent_test_programs::result_json(model.embed(&[]), |v| json!(v.len()));
    tabagent_test_programs::emit(&json!({
        "dims": vectors.iter().map(Vec::len).collect::<Vec<_>>(),
        "norms": vectors.iter().map(|v| dot(v, v).sqrt()).collect::<Vec<_>>(),
        "cosine": cos,
        "empty_text": empty,
        "no_texts": none,
    }));
}
