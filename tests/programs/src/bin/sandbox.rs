//! Probes what the guest can reach: environment, files, network, models. Argument 1 is a file
//! path to read inside a granted directory (if any); prints one JSON object.

use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let read = |p: &str| match std::fs::read_to_string(p) {
        Ok(s) => json!({ "ok": s }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let granted_file = args.get(1).cloned().unwrap_or_default();
    let write_attempt = match std::fs::write(format!("{granted_file}.new"), b"x") {
        Ok(()) => json!("written"),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let tcp = match std::net::TcpStream::connect("127.0.0.1:9") {
        Ok(_) => json!("connected"),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let dns = match std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)) {
        Ok(_) => json!("resolved"),
        Err(e) => json!({ "error": e.to_string() }),
    };
    println!(
        "{}",
        json!({
            "args": args,
            "env": env,
            "etc_passwd": read("/etc/passwd"),
            "root_listing": std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.to_string()).ok(),
            "granted_file": if granted_file.is_empty() { json!(null) } else { read(&granted_file) },
            "write_in_granted_dir": write_attempt,
            "tcp": tcp,
            "dns": dns,
            "models": tabagent_guest::granted_models(),
        })
    );
}
