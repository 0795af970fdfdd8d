"""Load run against OpenAI-compatible servers: N streamed chat completions from W workers each,
side by side. Reports requests/s, latency and time-to-first-token percentiles, generated tokens/s,
failures and the server's resident memory before and after; appends the section to a Markdown
file when asked.

Usage: serve_load.py --server NAME=URL=PID ... [--requests 200] [--workers 8] [--max-tokens 32]
                     [--write docs/BENCHMARKS.md --machine TEXT]
"""

import argparse
import json
import statistics
import threading
import time

import httpx
from md_section import write_section

SECTION = "## OpenAI-compatible server under load"


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


PROMPT = "Write one sentence about topic number {}."


def one(client, url, i, max_tokens, counts_end_token=False, last_out=None, prompt=PROMPT):
    """One streamed chat: (latency s, time to first content s, generated tokens). Tokens are
    counted as the host counts them: llama-server also counts the end-of-generation token it
    sampled (`counts_end_token`), which is taken off when the reply ended by itself. When
    `last_out` is a list, the time of the last content chunk (from the start) is appended."""
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": prompt.format(i % 25)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    ttft = None
    last = None
    tokens = 0
    finish = None
    with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            r.read()
            raise RuntimeError(f"status {r.status_code}: {r.text[:200]}")
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for c in chunk.get("choices", []):
                if c.get("delta", {}).get("content"):
                    last = time.perf_counter() - t0
                    if ttft is None:
                        ttft = last
                finish = c.get("finish_reason") or finish
    if counts_end_token and finish == "stop" and tokens > 0:
        tokens -= 1
    if last_out is not None:
        last_out.append(last if last is not None else time.perf_counter() - t0)
    return time.perf_counter() - t0, ttft, tokens


def run(url, pid, requests, workers, max_tokens, counts_end_token=False):
    # A connection per request, the same for every server (keep-alive races with a server
    # closing idle connections would count as failures that are the client's).
    client = httpx.Client(timeout=300, headers={"Connection": "close"})
    # Warm-up: as many requests at once as there are workers, so that each server has made
    # whatever it keeps per concurrent request before memory is first read.
    warm = [threading.Thread(target=one, args=(client, url, i, max_tokens)) for i in range(workers)]
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    rss_before = rss_mib(pid)
    rss_mid = [None]
    results, failures = [], []
    lock = threading.Lock()
    next_i = [0]

    def worker():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= requests:
                return
            if i == requests // 2:
                rss_mid[0] = rss_mib(pid)
            try:
                r = one(client, url, i, max_tokens, counts_end_token)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    failures.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rss_after = rss_mib(pid)
    lat = sorted(r[0] for r in results)
    ttft = sorted(r[1] for r in results if r[1] is not None)

    def pct(xs, p):
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000 if xs else float("nan")

    return {
        "requests": requests,
        "ok": len(results),
        "failed": len(failures),
        "failures": failures[:3],
        "rps": len(results) / wall,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "ttft_p50_ms": pct(ttft, 50),
        "ttft_p99_ms": pct(ttft, 99),
        "tok_s": sum(r[2] for r in results) / wall,
        "mean_tokens": statistics.mean(r[2] for r in results) if results else 0,
        "rss_before_mib": rss_before,
        "rss_mid_mib": rss_mid[0],
        "rss_after_mib": rss_after,
        "wall_s": wall,
    }


def markdown(rows, args):
    out = [SECTION, ""]
    out.append(
        f"Written by `scripts/bench-serve.sh`. Machine: {args.machine}. Model: SmolLM2-135M-Instruct Q4_1. "
        f"{args.requests} streamed chat completions (greedy, `max_tokens` {args.max_tokens}, 25 different prompts) "
        f"from {args.workers} concurrent workers (Python `httpx`, a connection per request), after {args.workers} concurrent warm-up requests; each server "
        f"serves the same model and requests in the same run, one after the other. Latency is the whole "
        f"request; time to first token is to the first content chunk; generated tokens are counted as the host counts them (llama-server's usage also counts the end-of-generation token, taken off here). Memory is the server's resident "
        f"set after the warm-up, half-way and after the run."
    )
    out.append("")
    out.append("| server | ok | failed | requests/s | p50 ms | p99 ms | TTFT p50 ms | TTFT p99 ms | generated tok/s | RSS MiB: warm → half-way → end |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in rows:
        out.append(
            f"| {name} | {r['ok']} | {r['failed']} | {r['rps']:.2f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
            f"{r['ttft_p50_ms']:.0f} | {r['ttft_p99_ms']:.0f} | {r['tok_s']:.1f} | "
            f"{r['rss_before_mib']:.0f} → {r['rss_mid_mib']:.0f} → {r['rss_after_mib']:.0f} |"
        )
    out.append("")
    if len(rows) == 2:
        (a, ra), (b, rb) = rows
        out.append(
            f"{a} against {b}: requests/s {ra['rps'] / rb['rps']:.2f}×, p50 latency "
            f"{ra['p50_ms'] / rb['p50_ms']:.2f}×, TTFT p50 {ra['ttft_p50_ms'] / rb['ttft_p50_ms']:.2f}×, "
            f"generated tok/s {ra['tok_s'] / rb['tok_s']:.2f}×."
        )
        out.append("")
    if args.note:
        out.append(args.note)
        out.append("")
    for name, r in rows:
        if r["failures"]:
            out.append(f"{name} failures (first ones): " + "; ".join(r["failures"]))
            out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", action="append", required=True, help="NAME=URL=PID")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--write")
    ap.add_argument("--machine", default="")
    ap.add_argument("--note", default="", help="a paragraph after the table")
    args = ap.parse_args()
    rows = []
    for spec in args.server:
        name, url, pid = spec.rsplit("=", 2)
        # llama-server's usage counts the end-of-generation token too; the host's does not.
        r = run(url, int(pid), args.requests, args.workers, args.max_tokens, "llama-server" in name)
        print(name, json.dumps(r))
        rows.append((name, r))
    md = markdown(rows, args)
    print(md)
    if args.write:
        write_section(args.write, SECTION, md)
    if any(r["failed"] for _, r in rows):
        raise SystemExit("some requests failed")


if __name__ == "__main__":
    main()
