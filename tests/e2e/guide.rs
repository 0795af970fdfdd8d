//! The plugin guide's commands, run as they are written: every `sh` block of
//! `docs/plugin-guide.md`, from the repository's root, with `tabagent-host` on the `PATH`.

use std::process::Command;
use tabagent_tests::{host_bin, repo_root};

#[test]
fn every_command_of_the_plugin_guide_runs() {
    let guide = std::fs::read_to_string(repo_root().join("docs/plugin-guide.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in guide.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks.len() >= 4, "the guide's sh blocks: {blocks:?}");
    let bin = host_bin();
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap());
    for block in &blocks {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", block])
            .current_dir(repo_root())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this block of the plugin guide failed:\n{block}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{block} printed nothing");
    }
    for f in ["chat-py.wasm", "chat-js.wasm", "chat-c.wasm"] {
        let _ = std::fs::remove_file(repo_root().join(f));
    }
}
