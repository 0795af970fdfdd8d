//! Hugging Face pulls against a local server speaking the hub's protocol
//! ([`tabagent_tests::hub_server`]) with the real SmolLM2 file: verified, resumable, atomic
//! pulls into a Hugging Face cache, loads from it, and guest pulls with progress.

use crate::guests::{GENERATE, PULL};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::hub::{
    Hub, HubConfig, HubError, HubRef, HubResolver, PullObserver, PullPolicy, PullState, PullStatus,
    PullTracker,
};
use tabagent_host::registry::Registry;
use tabagent_host::runtime::{GuestConfig, Host, HostOptions};
use tabagent_host::source::ModelSource;
use tabagent_tests::hub_server::{Fault, HubServer, git_blob_id, sha256_hex};
use tabagent_tests::{app, json_of, model_path};

pub const REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF";
pub const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const C1: &str = "c0ffee0000000000000000000000000000000001";

/// The real model's bytes, read once.
pub fn smol() -> Arc<Vec<u8>> {
    static BYTES: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    Arc::clone(BYTES.get_or_init(|| Arc::new(std::fs::read(model_path()).unwrap())))
}

fn smol_sha() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| sha256_hex(&smol()))
}

/// The states a pull went through.
#[derive(Default)]
struct States(Mutex<Vec<PullState>>);

impl PullObserver for States {
    fn update(&self, s: &PullStatus) {
        self.0.lock().unwrap().push(s.state);
    }
}

/// A fresh, empty folder.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = tabagent_tests::scratch().join(format!("tabagent-hub-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server holding the SmolLM2 repository: the real Q4_1 file, two small Q8_0 files and a README.
pub fn smol_server() -> HubServer {
    let s = HubServer::start();
    s.add_file(REPO, C1, FILE, smol());
    s.add_file(REPO, C1, "SmolLM2-135M-Instruct-Q8_0.gguf", Arc::new(b"GGUF small q8".to_vec()));
    s.add_file(
        REPO,
        C1,
        "extra/SmolLM2-135M-Instruct-q8_0.gguf",
        Arc::new(b"GGUF other q8".to_vec()),
    );
    s.add_file(REPO, C1, "README.md", Arc::new(b"# SmolLM2".to_vec()));
    s
}

fn config(server: &HubServer, cache: &Path) -> HubConfig {
    HubConfig {
        endpoint: server.endpoint().to_string(),
        cache_dir: cache.to_path_buf(),
        token: None,
        offline: false,
        retries: 0,
    }
}

fn hub(server: &HubServer, cache: &Path) -> Hub {
    Hub::new(config(server, cache)).unwrap()
}

fn q4_1() -> HubRef {
    HubRef::parse(&format!("{REPO}:Q4_1")).unwrap()
}

/// Every file under the cache (links and blobs), relative, except lock files.
fn cache_files(cache: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(&p, root, out);
            } else if !p.to_string_lossy().ends_with(".lock") {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(cache, cache, &mut out);
    out.sort();
    out
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join("models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF")
}

fn llama_host(hub: Hub, policy: PullPolicy) -> Host {
    let resolver = HubResolver::new(Arc::new(hub), policy);
    let registry = Registry::with_hub(Arc::new(LlamaEngine::new()), resolver);
    Host::with_registry(registry, HostOptions::default()).unwrap()
}

fn greedy_request(model: &str) -> String {
    serde_json::json!({
        "model": model,
        "prompt": {"text": "The capital of France is"},
        "options": {"max_tokens": 12, "temperature": 0.0},
        "mode": "generate"
    })
    .to_string()
}

async fn generate_on(
    host: &Host,
    models: BTreeMap<String, ModelSource>,
    model: &str,
) -> serde_json::Value {
    let config = GuestConfig {
        program: "generate".into(),
        args: vec![greedy_request(model)],
        models,
        ..GuestConfig::default()
    };
    let out = host.run(&app(host, GENERATE), config).await.unwrap();
    json_of(GENERATE, &out)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_pull_lands_verified_in_the_cache_loads_and_a_second_pull_stays_offline() {
    let server = smol_server();
    let cache = temp_dir("fresh");
    let hub = hub(&server, &cache);
    let tracker = PullTracker::new();
    let model = hub.pull(&q4_1(), &tracker).unwrap();
    let snapshot = repo_dir(&cache).join("snapshots").join(C1).join(FILE);
    assert_eq!(model.path, snapshot);
    assert_eq!(model.files, [FILE]);
    assert_eq!(std::fs::read_link(&snapshot).unwrap(), Path::new("../../blobs").join(smol_sha()));
    assert_eq!(sha256_hex(&std::fs::read(&snapshot).unwrap()), smol_sha());
    assert_eq!(std::fs::read_to_string(repo_dir(&cache).join("refs/main")).unwrap(), C1);
    let blobs = format!("models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF/blobs/{}", smol_sha());
    let link = format!("models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF/snapshots/{C1}/{FILE}");
    let main = "models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF/refs/main".to_string();
    assert_eq!(cache_files(&cache), [blobs, main, link]);
    let status = tracker.status();
    assert_eq!(
        (status.bytes_done, status.bytes_total),
        (smol().len() as u64, Some(smol().len() as u64))
    );
    let downloads = server.downloads();
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    assert_eq!(downloads[0].range, None);

    // Loaded through a guest from the cache, it generates what the file itself generates.
    server.clear_log();
    let host = llama_host(self::hub(&server, &cache), PullPolicy::Missing);
    let hub_grant = BTreeMap::from([("smol".to_string(), ModelSource::Hub(q4_1()))]);
    let from_hub = generate_on(&host, hub_grant, "smol").await;
    let file_grant = BTreeMap::from([("smol".to_string(), ModelSource::File(model_path()))]);
    let from_file = generate_on(&host, file_grant, "smol").await;
    let text = &from_hub["runs"][0]["generate"]["ok"]["text"];
    assert!(text.as_str().is_some_and(|t| !t.is_empty()), "{from_hub}");
    assert_eq!(text, &from_file["runs"][0]["generate"]["ok"]["text"]);
    // Neither that load nor a second pull touched the server.
    let again = hub.ensure(&q4_1(), PullPolicy::Missing, &PullTracker::new()).unwrap();
    assert_eq!(again, model);
    assert_eq!(server.requests(), [], "a cached model needs no network");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn the_quant_shorthand_picks_its_file_and_bad_choices_list_the_files() {
    let server = smol_server();
    let cache = temp_dir("quant");
    let hub = hub(&server, &cache);
    let r = HubRef::parse(&format!("{REPO}:q8_0")).unwrap();
    match hub.pull(&r, &PullTracker::new()) {
        Err(HubError::Ambiguous { choices, .. }) => assert_eq!(
            choices,
            ["SmolLM2-135M-Instruct-Q8_0.gguf", "extra/SmolLM2-135M-Instruct-q8_0.gguf"]
        ),
        other => panic!("{other:?}"),
    }
    let r = HubRef::parse(&format!("{REPO}:Q2_K")).unwrap();
    let e = hub.pull(&r, &PullTracker::new()).unwrap_err();
    assert!(matches!(e, HubError::NoMatch { .. }), "{e}");
    assert!(e.to_string().contains(FILE), "{e}");
    let r = HubRef::parse(REPO).unwrap();
    assert!(matches!(hub.pull(&r, &PullTracker::new()), Err(HubError::Ambiguous { .. })));
    let e =
        hub.pull(&HubRef::parse("nobody/nothing:Q4_0").unwrap(), &PullTracker::new()).unwrap_err();
    assert!(matches!(&e, HubError::NotFound(m) if m.contains("nobody/nothing")), "{e}");
    let e = hub
        .pull(&HubRef::parse(&format!("{REPO}:missing.gguf")).unwrap(), &PullTracker::new())
        .unwrap_err();
    assert!(matches!(&e, HubError::NotFound(m) if m.contains("no such file")), "{e}");
    assert_eq!(cache_files(&cache), Vec::<String>::new(), "nothing was downloaded");
    assert!(server.downloads().is_empty());
    // The shorthand picks the real file.
    let m =
        hub.pull(&HubRef::parse(&format!("{REPO}:Q4_1")).unwrap(), &PullTracker::new()).unwrap();
    assert_eq!(m.files, [FILE]);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_wrong_hash_is_refused_and_leaves_nothing_in_the_cache() {
    let server = HubServer::start();
    let data = Arc::new(vec![7u8; 1 << 20]);
    server.add_file_announcing("org/m", C1, "m-Q4_0.gguf", data, &"ab".repeat(32));
    let cache = temp_dir("hash");
    let hub = hub(&server, &cache);
    let e = hub.pull(&HubRef::parse("org/m:Q4_0").unwrap(), &PullTracker::new()).unwrap_err();
    assert!(
        matches!(&e, HubError::Integrity(m) if m.contains("SHA-256 mismatch") && m.contains("deleted")),
        "{e}"
    );
    assert_eq!(cache_files(&cache), Vec::<String>::new());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn short_long_and_html_bodies_are_refused_and_leave_nothing() {
    let server = HubServer::start();
    server.add_file(
        "org/m",
        C1,
        "m-Q4_0.gguf",
        Arc::new((0..=255u8).cycle().take(300_000).collect()),
    );
    for (fault, says) in [
        (Fault::ShortBody, "announced"),
        (Fault::LongBody, "announced"),
        (Fault::LongBodyUnannounced, "more than"),
        (Fault::Html, "HTML page"),
    ] {
        let cache = temp_dir("bodies");
        let hub = hub(&server, &cache);
        server.push_fault(fault.clone());
        let e = hub.pull(&HubRef::parse("org/m:Q4_0").unwrap(), &PullTracker::new()).unwrap_err();
        assert!(matches!(&e, HubError::Integrity(m) if m.contains(says)), "{fault:?}: {e}");
        assert_eq!(cache_files(&cache), Vec::<String>::new(), "{fault:?}");
        // The next, honest download succeeds.
        hub.pull(&HubRef::parse("org/m:Q4_0").unwrap(), &PullTracker::new()).unwrap();
        std::fs::remove_dir_all(&cache).unwrap();
    }
}

#[test]
fn a_dropped_connection_resumes_where_it_stopped() {
    let server = smol_server();
    let cache = temp_dir("resume");
    let hub = hub(&server, &cache);
    let half = smol().len() as u64 / 2;
    server.push_fault(Fault::DropAfter(half));
    let e = hub.pull(&q4_1(), &PullTracker::new()).unwrap_err();
    assert!(matches!(e, HubError::Interrupted(..)), "{e}");
    let part = repo_dir(&cache).join("blobs").join(format!("{}.part", smol_sha()));
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept <= half, "kept {kept} of {half}");
    assert!(!repo_dir(&cache).join("snapshots").exists(), "nothing half-written is visible");
    assert!(!repo_dir(&cache).join("blobs").join(smol_sha()).exists());
    let m = hub.pull(&q4_1(), &PullTracker::new()).unwrap();
    let downloads = server.downloads();
    assert_eq!(downloads.len(), 2);
    assert_eq!(downloads[1].range.as_deref(), Some(format!("bytes={kept}-").as_str()));
    assert_eq!(sha256_hex(&std::fs::read(&m.path).unwrap()), smol_sha());
    assert!(!part.exists());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_server_that_ignores_range_still_gives_a_correct_file() {
    let server = HubServer::start();
    let data: Arc<Vec<u8>> = Arc::new((0..=250u8).cycle().take(2 << 20).collect());
    server.add_file("org/m", C1, "m-Q4_0.gguf", Arc::clone(&data));
    let cache = temp_dir("norange");
    let hub = hub(&server, &cache);
    server.push_fault(Fault::DropAfter(700_000));
    server.push_fault(Fault::IgnoreRange);
    assert!(hub.pull(&HubRef::parse("org/m:Q4_0").unwrap(), &PullTracker::new()).is_err());
    let m = hub.pull(&HubRef::parse("org/m:Q4_0").unwrap(), &PullTracker::new()).unwrap();
    let d = server.downloads();
    assert!(
        d[1].range.as_deref().is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "{d:?}"
    );
    assert_eq!(std::fs::read(&m.path).unwrap(), *data);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn two_concurrent_pulls_of_one_file_download_it_once() {
    let server = smol_server();
    server.throttle(Some(150 << 20));
    let cache = temp_dir("concurrent");
    let (a, b) = (hub(&server, &cache), hub(&server, &cache));
    let (ta, tb) = (Arc::new(States::default()), Arc::new(States::default()));
    let (tracker_a, tracker_b) =
        (PullTracker::observed(Arc::clone(&ta)), PullTracker::observed(Arc::clone(&tb)));
    let (ma, mb) = std::thread::scope(|s| {
        let ha = s.spawn(|| a.pull(&q4_1(), &tracker_a));
        let hb = s.spawn(|| b.pull(&q4_1(), &tracker_b));
        (ha.join().unwrap().unwrap(), hb.join().unwrap().unwrap())
    });
    assert_eq!(ma, mb);
    let waited =
        [&ta, &tb].iter().filter(|t| t.0.lock().unwrap().contains(&PullState::Waiting)).count();
    assert_eq!(waited, 1, "one pull waited for the other: {:?} {:?}", ta.0, tb.0);
    assert_eq!(server.downloads().len(), 1, "{:?}", server.downloads());
    assert_eq!(sha256_hex(&std::fs::read(&ma.path).unwrap()), smol_sha());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn offline_a_miss_names_the_file_and_a_hit_works() {
    let server = smol_server();
    let cache = temp_dir("offline");
    let offline = Hub::new(HubConfig { offline: true, ..config(&server, &cache) }).unwrap();
    let e = offline.ensure(&q4_1(), PullPolicy::Missing, &PullTracker::new()).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, HubError::NotCached(..)), "{m}");
    assert!(m.contains(REPO) && m.contains("Q4_1") && m.contains("offline"), "{m}");
    let e = offline.pull(&q4_1(), &PullTracker::new()).unwrap_err();
    assert!(matches!(e, HubError::NotCached(..)), "{e}");
    assert_eq!(server.requests(), [], "offline never touches the network");
    hub(&server, &cache).pull(&q4_1(), &PullTracker::new()).unwrap();
    server.clear_log();
    let m = offline.ensure(&q4_1(), PullPolicy::Always, &PullTracker::new()).unwrap();
    assert_eq!(m.files, [FILE]);
    // A pinned commit resolves offline too.
    let pinned = q4_1().at(C1).unwrap();
    assert_eq!(
        offline.ensure(&pinned, PullPolicy::Missing, &PullTracker::new()).unwrap().path,
        m.path
    );
    assert_eq!(server.requests(), []);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_pinned_revision_pulls_that_commit_and_leaves_branches_alone() {
    let server = smol_server();
    let c2 = "c0ffee0000000000000000000000000000000002";
    server.add_file(REPO, c2, FILE, Arc::new(b"GGUF newer".to_vec()));
    let cache = temp_dir("pinned");
    let hub = hub(&server, &cache);
    let m = hub.pull(&q4_1().at(C1).unwrap(), &PullTracker::new()).unwrap();
    assert_eq!(m.commit, C1);
    assert!(!repo_dir(&cache).join("refs/main").exists(), "a pinned pull writes no ref");
    let newer = hub.pull(&q4_1(), &PullTracker::new()).unwrap();
    assert_eq!(newer.commit, c2);
    assert_eq!(std::fs::read(&newer.path).unwrap(), b"GGUF newer");
    assert_eq!(std::fs::read_to_string(repo_dir(&cache).join("refs/main")).unwrap(), c2);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guests_pull_rises_to_done_while_another_guest_generates() {
    let server = smol_server();
    // About 2.5 s for the model, so progress is seen on the way.
    server.throttle(Some(40 << 20));
    let cache = temp_dir("guest");
    let host = llama_host(hub(&server, &cache), PullPolicy::Never);
    let hub_grant = BTreeMap::from([("smol".to_string(), ModelSource::Hub(q4_1()))]);
    let puller = GuestConfig {
        program: "pull".into(),
        args: vec!["smol".into(), "smol".into()],
        models: hub_grant.clone(),
        allow_pull: vec!["HuggingFaceTB/*".into()],
        ..GuestConfig::default()
    };
    let pull_app = app(&host, PULL);
    let started = Instant::now();
    let pulling = async {
        let out = host.run(&pull_app, puller).await;
        (out, started.elapsed())
    };
    let generating = async {
        while server.downloads().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let file_grant = BTreeMap::from([("smol".to_string(), ModelSource::File(model_path()))]);
        let out = generate_on(&host, file_grant, "smol").await;
        (out, started.elapsed())
    };
    let ((pulled, pull_ended), (generated, generated_at)) = tokio::join!(pulling, generating);
    let pulled = json_of(PULL, &pulled.unwrap());
    assert!(generated["runs"][0]["generate"]["ok"]["text"].is_string(), "{generated}");
    assert!(generated_at < pull_ended, "the other guest finished while the pull ran");
    // Before the pull the granted name was not in the cache (and --pull never).
    assert_eq!(pulled["before"]["kind"], "not-found", "{pulled}");
    let total = smol().len() as u64;
    let progress = pulled["progress"].as_array().unwrap();
    let done: Vec<u64> = progress.iter().map(|p| p[1].as_u64().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "progress only rises: {done:?}");
    assert!(done.iter().filter(|&&d| d > 0 && d < total).count() >= 3, "{done:?}");
    assert_eq!(progress.last().unwrap(), &serde_json::json!(["done", total, total]));
    assert_eq!(pulled["pull"]["ok"]["files"], 1);
    assert!(pulled["text"]["ok"].as_str().is_some_and(|t| !t.is_empty()), "{pulled}");
    assert_eq!(pulled["reference"], q4_1().to_string());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_without_allow_pull_is_refused_and_patterns_are_whole() {
    let server = smol_server();
    let cache = temp_dir("denied");
    let host = llama_host(hub(&server, &cache), PullPolicy::Never);
    for allow in [vec![], vec!["other/*".to_string()], vec!["HuggingFaceTB/SmolLM2".to_string()]] {
        let config = GuestConfig {
            program: "pull".into(),
            args: vec![q4_1().to_string(), "smol".into()],
            allow_pull: allow.clone(),
            ..GuestConfig::default()
        };
        let out = json_of(PULL, &host.run(&app(&host, PULL), config).await.unwrap());
        assert_eq!(out["pull"]["error"]["kind"], "not-granted", "{allow:?}: {out}");
        assert_eq!(out["allowed"], serde_json::json!(allow));
    }
    let config = GuestConfig {
        program: "pull".into(),
        args: vec![format!("{REPO}:../../etc/passwd.gguf"), "smol".into()],
        allow_pull: vec!["*".into()],
        ..GuestConfig::default()
    };
    let out = json_of(PULL, &host.run(&app(&host, PULL), config).await.unwrap());
    assert_eq!(out["pull"]["error"]["kind"], "invalid-input", "{out}");
    assert!(server.requests().is_empty());
    assert_eq!(cache_files(&cache), Vec::<String>::new());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_split_model_is_pulled_as_a_set_and_the_token_goes_to_the_hub_only() {
    let server = HubServer::start();
    let part = |n: u8| Arc::new(vec![n; 300_000]);
    server.add_file("org/big", C1, "big-Q8_0-00001-of-00002.gguf", part(1));
    server.add_file("org/big", C1, "big-Q8_0-00002-of-00002.gguf", part(2));
    server.add_file("org/big", C1, "big-Q4_0.gguf", part(3));
    let cache = temp_dir("split");
    let hub =
        Hub::new(HubConfig { token: Some("hf_test_token".into()), ..config(&server, &cache) })
            .unwrap();
    let tracker = PullTracker::new();
    let m = hub.pull(&HubRef::parse("org/big:Q8_0").unwrap(), &tracker).unwrap();
    assert_eq!(m.files, ["big-Q8_0-00001-of-00002.gguf", "big-Q8_0-00002-of-00002.gguf"]);
    assert!(m.path.ends_with("big-Q8_0-00001-of-00002.gguf"));
    assert_eq!(m.size, 600_000);
    let status = tracker.status();
    assert_eq!((status.files_done, status.files_total, status.bytes_done), (2, 2, 600_000));
    let second = m.path.with_file_name("big-Q8_0-00002-of-00002.gguf");
    assert_eq!(std::fs::read(second).unwrap(), *part(2));
    // Naming any part pulls (here: finds) the whole set.
    let again =
        hub.cached(&HubRef::parse("org/big:big-Q8_0-00002-of-00002.gguf").unwrap()).unwrap();
    assert_eq!(again.map(|a| a.files), Some(m.files.clone()));
    let requests = server.requests();
    assert_eq!(requests.iter().filter(|r| r.path.starts_with("/cdn/")).count(), 2);
    for r in requests {
        if r.path.starts_with("/cdn/") {
            assert_eq!(r.auth, None, "the token never goes to the CDN: {r:?}");
        } else {
            assert_eq!(r.auth.as_deref(), Some("Bearer hf_test_token"), "{r:?}");
        }
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn files_stored_in_git_are_checked_against_their_blob_id() {
    let server = HubServer::start();
    let data = Arc::new(b"GGUF a small file kept in git".to_vec());
    server.add_git_file("org/m", C1, "small.gguf", Arc::clone(&data), &git_blob_id(&data));
    server.add_git_file("org/m", C1, "lying.gguf", Arc::clone(&data), &git_blob_id(b"other"));
    let cache = temp_dir("git");
    let hub = hub(&server, &cache);
    let m = hub.pull(&HubRef::parse("org/m:small.gguf").unwrap(), &PullTracker::new()).unwrap();
    assert_eq!(std::fs::read(&m.path).unwrap(), *data);
    let e = hub.pull(&HubRef::parse("org/m:lying.gguf").unwrap(), &PullTracker::new()).unwrap_err();
    assert!(matches!(&e, HubError::Integrity(msg) if msg.contains("git blob id mismatch")), "{e}");
    // Fetched at the commit the hub named, not at the branch.
    let got: Vec<_> = server.requests().into_iter().filter(|r| r.method == "GET").collect();
    assert!(got.iter().all(|r| r.path.contains(&format!("/resolve/{C1}/"))), "{got:?}");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn background_pulls_are_capped_cancellable_and_end_when_offline() {
    let server = HubServer::start();
    server.throttle(Some(64 << 10));
    for i in 0..5 {
        server.add_file("org/m", C1, &format!("m{i}-Q4_0.gguf"), Arc::new(vec![i; 4 << 20]));
    }
    let cache = temp_dir("cap");
    let hub = Arc::new(hub(&server, &cache));
    let start = |i: u8| hub.start_pull(HubRef::parse(&format!("org/m:m{i}-Q4_0.gguf")).unwrap());
    let tasks: Vec<_> = (0..4).map(|i| start(i).unwrap()).collect();
    // The same reference, spelt otherwise, joins its pull.
    let again = hub.start_pull(HubRef::parse("org/m:m0-Q4_0.gguf@main").unwrap()).unwrap();
    assert!(Arc::ptr_eq(&again, &tasks[0]));
    let e = start(4).unwrap_err();
    assert!(matches!(e, HubError::Busy(4)), "{e}");
    for t in &tasks {
        t.cancel();
    }
    for t in &tasks {
        let mut s = t.status();
        while !s.state.is_final() {
            s = t.wait_change(&s, Duration::from_secs(5));
        }
        assert_eq!(s.state, PullState::Failed);
        assert_eq!(t.result(), Some(Err(HubError::Cancelled)));
    }
    let fifth = start(4).expect("cancelled pulls make room");
    // It runs on in the background: stop it before its cache folder is removed.
    fifth.cancel();
    let mut s = fifth.status();
    while !s.state.is_final() {
        s = fifth.wait_change(&s, Duration::from_secs(5));
    }
    // Offline, a background pull of something not cached fails at once instead of hanging.
    let offline =
        Arc::new(Hub::new(HubConfig { offline: true, ..config(&server, &cache) }).unwrap());
    let t = offline.start_pull(HubRef::parse("org/m:m3-Q4_0.gguf").unwrap()).unwrap();
    let mut s = t.status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.state.is_final() && Instant::now() < deadline {
        s = t.wait_change(&s, Duration::from_secs(1));
    }
    assert_eq!(s.state, PullState::Failed, "{s:?}");
    assert!(matches!(t.result(), Some(Err(HubError::NotCached(..)))));
    std::fs::remove_dir_all(&cache).unwrap();
}
