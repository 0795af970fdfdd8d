//! Concurrency and lifecycle: parallel loads share one copy, loads of different models do not
//! wait for each other, a generation goes on while a large `embed` runs on the same model, and
//! two guests load one model at once.

use crate::guests::METADATA;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::engine::{LoadOptions, Prompt, SamplingParams, SessionOptions, StreamEvent};
use tabagent_host::registry::Registry;
use tabagent_host::source::ModelSource;
use tabagent_tests::{model_path, run_json, smollm2};

#[test]
fn parallel_loads_of_one_model_load_it_once() {
    let registry = Registry::new(Arc::new(LlamaEngine::new()));
    let source = ModelSource::File(model_path());
    let models: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| registry.load(&source, &LoadOptions::default()).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for m in &models[1..] {
        assert!(Arc::ptr_eq(&models[0], m), "a second copy of the weights was loaded");
    }
}

/// Two different model files load at once: the second is not held up by the first's load
/// probe. The probe program here is the real `tabagent-host probe-model`, behind a script that
/// takes 3 s longer for the file named `slow-*`.
#[test]
fn loads_of_different_models_run_in_parallel() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tabagent_tests::scratch().join(format!("tabagent-parallel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (slow, fast) = (dir.join("slow-model.gguf"), dir.join("fast-model.gguf"));
    std::fs::copy(model_path(), &slow).unwrap();
    std::fs::copy(model_path(), &fast).unwrap();
    let probe = dir.join("probe.sh");
    std::fs::write(
        &probe,
        format!(
            "#!/bin/sh\nfor last; do :; done\ncase \"$last\" in *slow-*) sleep 3;; esac\nexec {} \"$@\"\n",
            tabagent_tests::host_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let engine = LlamaEngine::with_probe(probe, vec!["probe-model".into()]);
    let registry = Registry::new(Arc::new(engine));
    let start = Instant::now();
    let (slow_took, fast_took) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            registry.load(&ModelSource::File(slow.clone()), &LoadOptions::default()).unwrap();
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        let b = s.spawn(|| {
            registry.load(&ModelSource::File(fast.clone()), &LoadOptions::default()).unwrap();
            start.elapsed()
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    std::fs::remove_dir_all(&dir).unwrap();
    println!("slow load {slow_took:?}, fast load (started 200 ms later) {fast_took:?}");
    assert!(slow_took >= Duration::from_secs(3), "{slow_took:?}");
    assert!(
        fast_took < slow_took,
        "the second model waited for the first: {fast_took:?} vs {slow_took:?}"
    );
}

/// A large `embed` on a model and a generation on the same model at once: the generation keeps
/// producing tokens while the embedding runs, instead of waiting for it to end.
#[test]
fn a_generation_keeps_producing_tokens_while_a_large_embed_runs() {
    let registry = Registry::new(Arc::new(LlamaEngine::new()));
    let model = registry.load(&ModelSource::File(model_path()), &LoadOptions::default()).unwrap();
    let session = model
        .new_session(&SessionOptions {
            context_size: 1024,
            batch_size: 512,
            threads: 2,
            cache_scope: None,
            chat_template: None,
        })
        .unwrap();
    let params = SamplingParams {
        max_tokens: 400,
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_window: 64,
        seed: 1,
        stop: Vec::new(),
        pieces: true,
        deadline: None,
        constraint: None,
        tools: None,
        render_special: false,
    };
    let sentence =
        "The quick brown fox jumps over the lazy dog while the river runs past the old mill. ";
    let texts: Vec<String> = (0..6).map(|i| format!("{i}: {}", sentence.repeat(8))).collect();
    let mut stream =
        session.generate(Prompt::Text("1, 2, 3, 4, 5, 6, 7, 8, 9, 10,".into()), params).unwrap();
    // Wait for the generation to be under way.
    assert!(matches!(stream.blocking_next_event(), Some(StreamEvent::Piece(_))));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (pieces, (embed_start, embed_end)) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut at = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match stream.blocking_next_event() {
                    Some(StreamEvent::Piece(_)) => at.push(Instant::now()),
                    Some(StreamEvent::Failed(e)) => panic!("{e}"),
                    _ => break,
                }
            }
            at
        });
        let start = Instant::now();
        let vectors = model.embed(&texts).unwrap();
        let end = Instant::now();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(vectors.len(), texts.len());
        (reader.join().unwrap(), (start, end))
    });
    let during = pieces.iter().filter(|t| **t > embed_start && **t < embed_end).count();
    let took = embed_end.duration_since(embed_start);
    println!(
        "embed of {} texts took {took:?}; {during} pieces were generated meanwhile",
        texts.len()
    );
    assert!(
        took > Duration::from_millis(500),
        "the embedding was too small to test with: {took:?}"
    );
    assert!(during >= 5, "only {during} pieces during a {took:?} embed: generations were stalled");
}

#[tokio::test]
async fn two_guests_load_one_model_at_once() {
    let (a, b) =
        tokio::join!(run_json(METADATA, smollm2(), &[]), run_json(METADATA, smollm2(), &[]));
    assert_eq!(a["vocab_size"], 49152);
    assert_eq!(a, b);
}

/// Chunked embeddings (64 tokens a step, pooled by the host) equal llama.cpp's own mean pooling
/// over the whole text in one decode.
#[test]
fn chunked_embeddings_equal_one_pooled_decode() {
    use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::model::LlamaModel;
    use llama_cpp_2::model::params::LlamaModelParams;
    let text =
        "The quick brown fox jumps over the lazy dog while the river runs past the old mill. "
            .repeat(6);
    let registry = Registry::new(Arc::new(LlamaEngine::new()));
    let model = registry.load(&ModelSource::File(model_path()), &LoadOptions::default()).unwrap();
    let ours = model.embed(std::slice::from_ref(&text)).unwrap().remove(0);
    let backend = tabagent_host::engine::llama::backend().unwrap();
    let direct =
        LlamaModel::load_from_file(backend, model_path(), &LlamaModelParams::default()).unwrap();
    let params = LlamaContextParams::default()
        .with_n_ctx(std::num::NonZeroU32::new(2048))
        .with_n_batch(2048)
        .with_n_ubatch(2048)
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Mean);
    let mut ctx = direct.new_context(backend, params).unwrap();
    let tokens = direct.vocab().tokenize(text.as_bytes(), true, false);
    assert!(tokens.len() > 64, "the text must span several chunks: {} tokens", tokens.len());
    let mut batch = LlamaBatch::new(tokens.len(), 1);
    batch.add_sequence(&tokens, 0, true).unwrap();
    ctx.decode(&mut batch).unwrap();
    let mut reference = ctx.embeddings_seq_ith(0).unwrap().to_vec();
    tabagent_host::engine::normalize(&mut reference);
    let cosine: f32 = ours.iter().zip(&reference).map(|(a, b)| a * b).sum();
    println!("{} tokens: cosine to llama.cpp's pooled embedding {cosine:.6}", tokens.len());
    assert!(cosine > 0.999, "cosine {cosine}");
}
