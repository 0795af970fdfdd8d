//! BitNet 1.58 and format routing: what every fixture and real model is and who runs it (the
//! CLI and the `models.inspect` import agree), the tiny ternary model loading with the right
//! metadata and generating deterministically and alike in `TQ1_0` and `TQ2_0`, and hostile
//! ternary files refused cleanly.

use crate::guests::{INSPECT, METADATA};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use tabagent_host::source::ModelSource;
use tabagent_tests::bitnet::{fixture, fixtures};
use tabagent_tests::{grant, host_bin, model_path, repo_root, run, run_json};

fn inspect(target: &Path) -> Value {
    let out = Command::new(host_bin()).arg("inspect").arg(target).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "inspect {}: {}",
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn types(r: &Value) -> Vec<(String, u64)> {
    r["tensorTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["tensors"].as_u64().unwrap()))
        .collect()
}

fn reason(r: &Value) -> &str {
    assert_eq!(r["route"]["kind"], "unsupported", "{r}");
    r["route"]["reason"].as_str().unwrap()
}

#[test]
fn detection_names_format_bitnet_task_and_route_of_every_fixture_and_real_model() {
    for (ty, other) in [("TQ1_0", "TQ2_0"), ("TQ2_0", "TQ1_0")] {
        let r = inspect(&fixture(&format!("bitnet-tiny-{ty}.gguf")));
        assert_eq!(
            (r["format"].as_str(), r["architecture"].as_str()),
            (Some("gguf"), Some("bitnet"))
        );
        assert_eq!((r["fileType"].as_str(), r["bitnet"].as_bool()), (Some(ty), Some(true)), "{r}");
        let t = types(&r);
        // 7 ternary matrices in each of 2 layers; the embedding Q8_0; 9 norms F32.
        assert!(t.contains(&(ty.to_string(), 14)) && t.contains(&("Q8_0".into(), 1)), "{t:?}");
        assert!(t.contains(&("F32".into(), 9)) && !t.iter().any(|(n, _)| n == other), "{t:?}");
        let elements: u64 = r["tensorTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["elements"].as_u64().unwrap())
            .sum();
        assert_eq!(r["parameterCount"].as_u64(), Some(elements));
        assert_eq!((r["layerCount"].as_u64(), r["contextLength"].as_u64()), (Some(2), Some(2048)));
        assert_eq!(
            (r["task"].as_str(), r["chatTemplate"].as_bool()),
            (Some("text-generation"), Some(true))
        );
        assert_eq!(r["route"], json!({"kind": "llama", "kernels": "ternary"}));
    }
    let smol = inspect(&model_path());
    assert_eq!(
        (smol["architecture"].as_str(), smol["fileType"].as_str()),
        (Some("llama"), Some("Q4_1"))
    );
    assert_eq!((smol["bitnet"].as_bool(), smol["layerCount"].as_u64()), (Some(false), Some(30)));
    assert_eq!(types(&smol)[0], ("Q4_1".to_string(), 210));
    assert_eq!(smol["route"], json!({"kind": "llama", "kernels": "standard"}));
    let gemma = inspect(&repo_root().join("models/gemma-3-270m-q4_k_m.gguf"));
    assert_eq!(
        (gemma["architecture"].as_str(), gemma["bitnet"].as_bool()),
        (Some("gemma3"), Some(false))
    );
    assert_eq!(
        (gemma["task"].as_str(), gemma["route"]["kind"].as_str()),
        (Some("text-generation"), Some("llama"))
    );
    assert!(types(&gemma).iter().any(|(n, _)| n == "Q4_K"), "{gemma}");

    for f in ["i2s-bitnet.gguf", "i2s-bitnet-b1.58.gguf"] {
        let i2s = inspect(&fixture(f));
        assert_eq!(i2s["bitnet"], true);
        assert!(reason(&i2s).contains("I2_S") && reason(&i2s).contains("tq2_0"), "{i2s}");
    }
    assert!(reason(&inspect(&fixture("hostile-bad-blocks-TQ2_0.gguf"))).contains("not a multiple"));
    assert!(reason(&inspect(&fixture("hostile-truncated-TQ2_0.gguf"))).contains("past the end"));

    // Other formats, from headers the test writes.
    let dir = fixtures().join("others");
    let hf = dir.join("hf-checkpoint");
    std::fs::create_dir_all(&hf).unwrap();
    let header = br#"{"model.embed.weight":{"dtype":"F16","shape":[4,8],"data_offsets":[0,64]},"model.norm.weight":{"dtype":"BF16","shape":[8],"data_offsets":[64,80]},"__metadata__":{"format":"pt"}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend_from_slice(&[0u8; 80]);
    std::fs::write(hf.join("model.safetensors"), st).unwrap();
    std::fs::write(hf.join("config.json"), r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","num_hidden_layers":2,"max_position_embeddings":512}"#).unwrap();
    let folder = inspect(&hf);
    let st = &folder.as_array().unwrap()[0];
    assert_eq!(
        (st["format"].as_str(), st["architecture"].as_str()),
        (Some("safetensors"), Some("llama"))
    );
    assert_eq!(
        (st["parameterCount"].as_u64(), st["task"].as_str()),
        (Some(40), Some("text-generation"))
    );
    assert!(st["taskBasis"].as_str().unwrap().contains("LlamaForCausalLM"));
    assert!(reason(st).contains("convert_hf_to_gguf"), "{st}");
    let onnx = dir.join("model.onnx");
    std::fs::write(
        &onnx,
        [&b"\x08\x08\x12\x07pytorch\x1a\x032.1\x3a\x80\x02"[..], &[0u8; 256]].concat(),
    )
    .unwrap();
    let o = inspect(&onnx);
    assert_eq!(o["format"], "onnx");
    assert!(reason(&o).contains("ONNX runtime"));
    let tfl = dir.join("model.tflite");
    std::fs::write(&tfl, [&[0x1c, 0, 0, 0][..], b"TFL3", &[0u8; 64]].concat()).unwrap();
    assert!(reason(&inspect(&tfl)).contains("LiteRT"));
    let text = dir.join("notes.gguf");
    std::fs::write(&text, "not a model").unwrap();
    assert_eq!(inspect(&text)["format"], "other");
    // A folder: each model file in it.
    let all = inspect(fixtures());
    assert!(all.as_array().unwrap().len() >= 5, "{all}");
    let missing =
        Command::new(host_bin()).args(["inspect", "/nonexistent/model.gguf"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(126));
}

#[tokio::test]
async fn the_tiny_bitnet_model_generates_deterministically_and_alike_in_tq1_0_and_tq2_0() {
    let mut models = grant("tq1", fixture("bitnet-tiny-TQ1_0.gguf"));
    models.insert("tq2".into(), ModelSource::File(fixture("bitnet-tiny-TQ2_0.gguf")));
    models.insert("i2s".into(), ModelSource::File(fixture("i2s-bitnet.gguf")));
    models.insert("smol".into(), ModelSource::File(model_path()));
    let first = run_json(INSPECT, models.clone(), &["The lighthouse keeper"]).await;
    let again = run_json(INSPECT, models, &["The lighthouse keeper"]).await;
    let by =
        |v: &Value, n: &str| v.as_array().unwrap().iter().find(|m| m["name"] == n).unwrap().clone();
    let (tq1, tq2) = (by(&first, "tq1"), by(&first, "tq2"));
    for m in [&tq1, &tq2] {
        assert_eq!(
            (m["bitnet"].as_bool(), m["supported"].as_bool()),
            (Some(true), Some(true)),
            "{m}"
        );
        assert!(m["route"].as_str().unwrap().contains("ternary"), "{m}");
        assert_eq!(m["generated"]["tokens"].as_array().unwrap().len(), 16, "{m}");
    }
    // The same ternary weights in both encodings: the same greedy tokens, run after run.
    assert_eq!(tq1["generated"], tq2["generated"]);
    assert_eq!(tq1["generated"], by(&again, "tq1")["generated"]);
    assert_eq!(tq2["file_type"], "TQ2_0");
    let i2s = by(&first, "i2s");
    assert_eq!((i2s["bitnet"].as_bool(), i2s["supported"].as_bool()), (Some(true), Some(false)));
    assert!(i2s["route"].as_str().unwrap().contains("I2_S"));
    assert_eq!(by(&first, "smol")["bitnet"], false);

    let m = run_json(METADATA, grant("smollm2", fixture("bitnet-tiny-TQ2_0.gguf")), &[]).await;
    assert_eq!(
        (m["architecture"].as_str(), m["file_type"].as_str()),
        (Some("bitnet"), Some("TQ2_0"))
    );
    assert_eq!((m["layer_count"].as_u64(), m["embedding_size"].as_u64()), (Some(2), Some(256)));
    assert_eq!((m["vocab_size"].as_u64(), m["head_count"].as_u64()), (Some(49152), Some(4)));
    assert!(m["chat_template"].as_str().unwrap().contains("im_start"));
}

/// Every ternary tensor of a fixture: its name, values and block scales.
fn ternary_tensors(path: &Path) -> Vec<(String, Vec<i8>, Vec<u16>)> {
    let f = tabagent_host::gguf::GgufFile::open(path).unwrap();
    let bytes = std::fs::read(path).unwrap();
    f.tensors
        .iter()
        .filter_map(|t| {
            let ty = tabagent_bitnet::Ternary::from_ggml(t.ty.id)?;
            let start = (f.data_offset + t.offset) as usize;
            let (values, scales) = ty.decode(&bytes[start..start + t.size as usize]).unwrap();
            Some((t.name.clone(), values, scales))
        })
        .collect()
}

#[test]
fn tq1_0_and_tq2_0_fixtures_hold_bit_identical_ternary_weights() {
    let tq1 = ternary_tensors(&fixture("bitnet-tiny-TQ1_0.gguf"));
    let tq2 = ternary_tensors(&fixture("bitnet-tiny-TQ2_0.gguf"));
    assert_eq!(tq1.len(), 14);
    for ((n1, v1, d1), (n2, v2, d2)) in tq1.iter().zip(&tq2) {
        assert_eq!(n1, n2);
        assert!(v1 == v2, "{n1}: the ternary values differ between TQ1_0 and TQ2_0");
        assert_eq!(d1, d2, "{n1}: the block scales differ");
        // Real ternary weights: all three values, each about a third of the time.
        for want in [-1i8, 0, 1] {
            let share = v1.iter().filter(|v| **v == want).count() as f64 / v1.len() as f64;
            assert!((0.28..0.39).contains(&share), "{n1}: {want} is {share:.2} of the weights");
        }
        // One scale for every block: 2^-5 as f16.
        assert!(d1.iter().all(|d| *d == 0x2800), "{n1}");
    }
}

#[tokio::test]
async fn hostile_ternary_files_are_refused_with_a_reason() {
    for (file, says) in [
        ("hostile-truncated-TQ2_0.gguf", "past the end"),
        ("hostile-bad-blocks-TQ2_0.gguf", "not a multiple"),
        ("i2s-bitnet.gguf", "I2_S"),
        ("i2s-bitnet-b1.58.gguf", "I2_S"),
    ] {
        let out = run(METADATA, grant("smollm2", fixture(file)), &[]).await;
        assert_eq!(out.exit_code, 3, "{file}: {}", out.stdout_text());
        assert!(out.stderr_text().contains(says), "{file}: {}", out.stderr_text());
    }
    // The host is unharmed: the real model still loads.
    let ok = run_json(METADATA, grant("smollm2", model_path()), &[]).await;
    assert_eq!(ok["architecture"], "llama");
}
