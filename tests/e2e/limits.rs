//! Hostile guests: each abuse is stopped or refused with a clear message, and the same host then
//! serves a normal guest. Figures (how long a stop took) are printed.

use crate::guests::{ABUSE, METADATA};
use std::time::{Duration, Instant};
use tabagent_host::runtime::{GuestConfig, RunError, RunOutcome};
use tabagent_host::sandbox::GuestLimits;
use tabagent_tests::{app, host, smollm2};

fn config(args: &[&str], sandbox: GuestLimits) -> GuestConfig {
    GuestConfig {
        program: "abuse".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        models: smollm2(),
        sandbox,
        ..GuestConfig::default()
    }
}

async fn abuse(args: &[&str], sandbox: GuestLimits) -> (Result<RunOutcome, RunError>, Duration) {
    let component = app(host(), ABUSE);
    let start = Instant::now();
    let r = host().run(&component, config(args, sandbox)).await;
    (r, start.elapsed())
}

/// The host still serves a well-behaved guest.
async fn still_serving() {
    let v = tabagent_tests::run_json(METADATA, smollm2(), &[]).await;
    assert_eq!(v["vocab_size"], 49152);
}

fn deadline(ms: u64) -> GuestLimits {
    GuestLimits { deadline: Some(Duration::from_millis(ms)), ..GuestLimits::default() }
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let (r, took) = abuse(&["loop"], deadline(500)).await;
    let e = r.unwrap_err();
    println!("loop {{}} stopped after {took:?} (deadline 500ms): {e}");
    assert!(matches!(e, RunError::Deadline { in_host_call: false, .. }), "{e:?}");
    assert!(e.to_string().contains("deadline of 500ms"), "{e}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    still_serving().await;
}

#[tokio::test]
async fn generation_past_the_deadline_stops() {
    let (r, took) = abuse(&["generate-forever"], deadline(1500)).await;
    let e = r.unwrap_err();
    println!("endless generation stopped after {took:?} (deadline 1.5s): {e}");
    assert!(matches!(e, RunError::Deadline { .. }), "{e:?}");
    assert!(took < Duration::from_millis(3000), "{took:?}");
    still_serving().await;
}

#[tokio::test]
async fn memory_growth_is_refused_at_the_limit() {
    let limits = GuestLimits { memory_bytes: 128 << 20, ..GuestLimits::default() };
    let (r, _) = abuse(&["memory"], limits).await;
    let out = r.unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.stderr_text());
    let v: serde_json::Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    let got = v["allocated_mib"].as_u64().unwrap();
    println!("memory bomb got {got} MiB of a 128 MiB limit");
    assert!(got > 0 && got <= 128, "{got}");
    still_serving().await;
}

#[tokio::test]
async fn deep_recursion_traps() {
    let (r, _) = abuse(&["recursion"], GuestLimits::default()).await;
    let e = r.unwrap_err();
    assert!(matches!(e, RunError::StackOverflow { .. }), "{e:?}");
    assert!(e.to_string().contains("stack"), "{e}");
    still_serving().await;
}

#[tokio::test]
async fn a_million_model_handles_are_refused() {
    let (r, took) = abuse(&["resources"], GuestLimits::default()).await;
    let out = r.unwrap();
    let v: serde_json::Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    println!("resource flood: {} handles held before refusal, in {took:?}", v["held"]);
    assert_eq!(v["held"], 10_000);
    assert_eq!(v["error"]["kind"], "resource-exhausted");
    still_serving().await;
}

#[tokio::test]
async fn a_huge_argument_is_refused() {
    // Over the host's 4 MiB input limit: an error value.
    let (r, _) = abuse(&["big-argument", "16"], GuestLimits::default()).await;
    let out = r.unwrap();
    let v: serde_json::Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    assert_eq!(v["tokenize"]["error"]["kind"], "invalid-input", "{v}");
    assert!(v["tokenize"]["error"]["message"].as_str().unwrap().contains("limit"));
    // Over the 64 MiB a host call may carry: refused before it is copied, with a trap.
    let (r, took) = abuse(&["big-argument", "256"], GuestLimits::default()).await;
    let e = r.unwrap_err();
    assert!(matches!(e, RunError::Trap { .. }), "{e:?}");
    let e = e.to_string();
    println!("256 MiB argument refused in {took:?}");
    assert!(e.contains("too much data"), "{e}");
    still_serving().await;
}

#[tokio::test]
async fn max_tokens_of_u32_max_is_clamped_to_the_context() {
    let (r, _) = abuse(&["max-tokens"], GuestLimits::default()).await;
    let out = r.unwrap();
    let v: serde_json::Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    let g = &v["generate"]["ok"];
    let context = v["context"].as_u64().unwrap();
    let used = g["usage"]["prompt_tokens"].as_u64().unwrap()
        + g["usage"]["generated_tokens"].as_u64().unwrap();
    assert!(used <= context, "{v}");
    assert!(["length", "stop"].contains(&g["finish"].as_str().unwrap()), "{v}");
}

#[tokio::test]
async fn forged_and_stale_handles_trap_that_guest_only() {
    for abuse_kind in ["forged-handle", "stale-handle"] {
        let (r, _) = abuse(&[abuse_kind], GuestLimits::default()).await;
        let e = r.unwrap_err();
        assert!(matches!(e, RunError::Trap { .. }), "{abuse_kind}: {e:?}");
        let e = e.to_string();
        assert!(e.contains("handle"), "{abuse_kind}: {e}");
        still_serving().await;
    }
}

/// A component (written in WAT) whose `wasi:cli/run` grows its table 100,000 elements at a time
/// until the host refuses; it traps if the table got past the host's limit of 1 Mi elements.
const TABLE_BOMB: &str = r#"
(component
  (core module $m
    (table $t 1 funcref)
    (func (export "run") (result i32)
      (block $refused
        (loop $grow
          (br_if $refused (i32.eq (table.grow $t (ref.null func) (i32.const 100000)) (i32.const -1)))
          (br $grow)))
      (if (i32.gt_u (table.size $t) (i32.const 1048576)) (then unreachable))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.12" (instance $cli))
)
"#;

#[tokio::test]
async fn table_growth_is_refused_at_the_limit() {
    let component = host().command_from_bytes(TABLE_BOMB.as_bytes()).unwrap();
    let start = Instant::now();
    let out = host().run(&component, GuestConfig::default()).await.unwrap();
    println!("table bomb refused after {:?}", start.elapsed());
    assert_eq!(out.exit_code, 0, "the table grew past its limit");
    still_serving().await;
}

#[tokio::test]
async fn without_the_limit_the_table_bomb_would_grow_past_it() {
    // The check above can fail: with the limit lifted, the bomb's own assertion traps.
    let component = host().command_from_bytes(TABLE_BOMB.as_bytes()).unwrap();
    let sandbox = GuestLimits { table_elements: 4 << 20, ..GuestLimits::default() };
    let r = host().run(&component, GuestConfig { sandbox, ..GuestConfig::default() }).await;
    assert!(
        matches!(r, Err(RunError::Trap { .. })),
        "with a 4 Mi limit the table passes 1 Mi elements and the bomb must trap: {r:?}"
    );
}
