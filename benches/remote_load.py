"""Load run of the remote engine: `tabagent-host serve` with the openai-server guest, its model
granted as `remote:` over two llama.cpp `llama-server` endpoints. Every request is a guest of its
own; W workers keep W of them running. Two runs in one go:

- steady: both endpoints up the whole time;
- failover: endpoint A is killed a third of the way through and started again at two thirds.

Reports, per run, requests that finished, failed and were lost (a request is lost if it neither
finished nor got an error), requests/s, latency and time to first token, and how the requests
spread over the endpoints (tasks each llama-server logged). Writes its section of a Markdown file
when asked.

Usage: remote_load.py --host-bin B --guest W --llama-server L --model M [--requests 160]
                      [--workers 8] [--max-tokens 32] [--write docs/BENCHMARKS.md --machine TEXT]
"""

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time

import httpx
from local_servers import free_port, wait_health
from md_section import write_section

SECTION = "## Remote engine: one model over two llama-server endpoints"


class Endpoint:
    def __init__(self, name, bin, model, log_dir, slots):
        self.name, self.port = name, free_port()
        self.log = os.path.join(log_dir, f"llama-server-{name}.log")
        self.cmd = [bin, "-m", model, "--host", "127.0.0.1", "--port", str(self.port), "-t", "1",
                    "-c", str(4096 * slots), "-np", str(slots), "-kvu", "--jinja", "--no-webui"]
        self.proc = None

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        wait_health(self.url())

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def tasks(self):
        with open(self.log) as f:
            return f.read().count("launch_slot_")


def one(client, url, i, max_tokens):
    """One streamed chat: (latency, time to first token, tokens) when it finished; raises
    `Failed` when it ended with an error (a status or an error event), anything else when it was
    cut off without one."""
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": f"Write one sentence about topic number {i % 25}."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    ttft, tokens, finished, done = None, 0, False, False
    with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            r.read()
            raise Failed(f"status {r.status_code}: {r.text[:200]}")
        for line in r.iter_lines():
            if line == "data: [DONE]":
                done = True
            if not line.startswith("data: ") or done:
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise Failed(chunk["error"].get("message", str(chunk["error"])))
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for c in chunk.get("choices", []):
                if ttft is None and c.get("delta", {}).get("content"):
                    ttft = time.perf_counter() - t0
                finished = finished or c.get("finish_reason") is not None
    if not (finished and done):
        raise RuntimeError("the stream ended without a finish reason or an error")
    return time.perf_counter() - t0, ttft, tokens


class Failed(Exception):
    """A request that ended with an error the client was told."""


def load(url, requests, workers, max_tokens, at=None):
    """`requests` streamed chats from `workers` threads; `at` maps a count of finished requests
    to a function run once when that many have finished (the kill and the restart)."""
    client = httpx.Client(timeout=300, headers={"Connection": "close"})
    done, failed, lost, results = [0], [], [], []
    lock = threading.Lock()
    next_i = [0]
    at = dict(at or {})

    def worker():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= requests:
                return
            r, err, cut = None, None, None
            try:
                r = one(client, url, i, max_tokens)
            except Failed as e:
                err = str(e)
            except Exception as e:  # noqa: BLE001 - a request cut off without an error is lost
                cut = f"{type(e).__name__}: {e}"
            with lock:
                if r is not None:
                    results.append(r)
                elif err is not None:
                    failed.append(err)
                else:
                    lost.append(cut)
                done[0] += 1
                action = at.pop(done[0], None)
            if action:
                action()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(r[0] for r in results)
    ttft = sorted(r[1] for r in results if r[1] is not None)

    def pct(xs, p):
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000 if xs else float("nan")

    return {
        "requests": requests,
        "ok": len(results),
        "failed": len(failed),
        "lost": len(lost),
        "failures": failed[:3] + lost[:3],
        "rps": len(results) / wall,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "ttft_p50_ms": pct(ttft, 50),
        "tok_s": sum(r[2] for r in results) / wall,
        "wall_s": wall,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host-bin", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", type=int, default=160)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-concurrent", type=int, default=4)
    ap.add_argument("--write")
    ap.add_argument("--machine", default="")
    args = ap.parse_args()
    logs = tempfile.mkdtemp(prefix="tabagent-remote-bench-")
    a = Endpoint("A", args.llama_server, args.model, logs, args.max_concurrent)
    b = Endpoint("B", args.llama_server, args.model, logs, args.max_concurrent)
    a.start()
    b.start()
    config = os.path.join(logs, "remote.toml")
    with open(config, "w") as f:
        f.write(
            "[models.smollm2]\n"
            f'remote = ["{a.url()}/v1", "{b.url()}/v1"]\n'
            f"max-concurrent = {args.max_concurrent}\nhealth-interval-ms = 500\nretries = 3\n"
            "breaker-cooldown-ms = 500\n"
        )
    port = free_port()
    host_log = open(os.path.join(logs, "host.log"), "w")
    host = subprocess.Popen(
        [args.host_bin, "serve", args.guest, "--listen", f"127.0.0.1:{port}", "--config", config,
         "--max-running", str(args.workers * 2)],
        stdout=subprocess.DEVNULL, stderr=host_log)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        wait_health(url)
        load(url, args.workers, args.workers, args.max_tokens)  # warm-up
        for name, actions in [
            ("steady", {}),
            ("A killed at 1/3, back at 2/3", {
                args.requests // 3: a.kill,
                2 * args.requests // 3: a.start,
            }),
        ]:
            before = (a.tasks(), b.tasks())
            r = load(url, args.requests, args.workers, args.max_tokens, actions)
            r["spread"] = (a.tasks() - before[0], b.tasks() - before[1])
            r["host_up"] = host.poll() is None
            print(name, json.dumps(r))
            rows.append((name, r))
    finally:
        host.kill()
        for e in (a, b):
            if e.proc and e.proc.poll() is None:
                e.kill()
    out = [SECTION, ""]
    out.append(
        f"Written by `scripts/bench-remote.sh`. Machine: {args.machine}. Model: SmolLM2-135M-Instruct Q4_1. "
        f"`tabagent-host serve` with the openai-server guest; its model is granted as `remote:` over two "
        f"`llama-server` endpoints on the same machine (one thread and {args.max_concurrent} slots each, "
        f"`max-concurrent = {args.max_concurrent}` per endpoint, health checks every 500 ms). Each run: "
        f"{args.requests} streamed chat completions (greedy, `max_tokens` {args.max_tokens}) from "
        f"{args.workers} concurrent workers, each request its own guest instance. Spread: tasks each "
        f"endpoint logged. A request is lost if it neither finished nor got an error."
    )
    out.append("")
    out.append("| run | finished | failed | lost | requests/s | p50 ms | p99 ms | TTFT p50 ms | generated tok/s | tasks on A / B | host up |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name, r in rows:
        out.append(
            f"| {name} | {r['ok']} | {r['failed']} | {r['lost']} | {r['rps']:.2f} | {r['p50_ms']:.0f} | "
            f"{r['p99_ms']:.0f} | {r['ttft_p50_ms']:.0f} | {r['tok_s']:.1f} | {r['spread'][0]} / {r['spread'][1]} | "
            f"{'yes' if r['host_up'] else 'no'} |"
        )
    out.append("")
    out.append(
        "In the failover run the requests that were streaming from A when it was killed fail with an "
        "error that says so (at most `max-concurrent`); every request that had not shown text yet, "
        "queued ones included, finishes on B; once A is back its health check passes and it takes "
        "requests again. Both endpoints share this machine's two cores, so two endpoints do not add "
        "throughput here; on separate machines they would."
    )
    out.append("")
    for name, r in rows:
        if r["failures"]:
            out.append(f"{name}, failures (first ones): " + "; ".join(f[:200] for f in r["failures"]))
            out.append("")
    md = "\n".join(out)
    print(md)
    if args.write:
        write_section(args.write, SECTION, md)
    if any(r["lost"] for _, r in rows) or rows[0][1]["failed"] or not all(r["host_up"] for _, r in rows):
        raise SystemExit("requests were lost, the steady run failed some, or the host went down")


if __name__ == "__main__":
    main()
