"""The official `openai` Python client against `tabagent-host serve` with the openai-server guest.

Run by tests/e2e/serve.rs with: BASE_URL (the server, its model granted as `smollm2`), BUSY_URL
(a second server allowed one running request and no waiting ones), PROMPT, MAX_TOKENS and
EXPECTED (the chat example's greedy text for PROMPT and MAX_TOKENS). Every check asserts; the
last line printed is a JSON summary for the Rust side.
"""

import json
import math
import os
import statistics
import threading
import time

import httpx
import jsonschema
import openai

BASE = os.environ["BASE_URL"]
BUSY = os.environ["BUSY_URL"]
PROMPT = os.environ["PROMPT"]
MAX_TOKENS = int(os.environ["MAX_TOKENS"])
EXPECTED = os.environ["EXPECTED"]

client = openai.OpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0, timeout=120)
summary = {}


def chat_messages(prompt):
    return [{"role": "user", "content": prompt}]


def expect_error(cls, status, call, code=None):
    try:
        call()
    except cls as e:
        assert e.status_code == status, (cls, e.status_code, e)
        body = e.body if isinstance(e.body, dict) else {}
        # The client unwraps {"error": {...}} into `body`.
        for key in ("message", "type", "param", "code"):
            assert key in body, (key, body)
        if code is not None:
            assert body["code"] == code, body
        return body
    raise AssertionError(f"{cls.__name__} was not raised")


# models.list
ids = [m.id for m in client.models.list()]
assert ids == ["smollm2"], ids
assert client.models.retrieve("smollm2").id == "smollm2"

# A greedy chat completion equals the chat example's greedy text.
r = client.chat.completions.create(
    model="smollm2", messages=chat_messages(PROMPT), max_tokens=MAX_TOKENS, temperature=0
)
text = r.choices[0].message.content
assert text == EXPECTED, (text, EXPECTED)
assert r.choices[0].message.role == "assistant"
assert r.choices[0].finish_reason in ("length", "stop"), r.choices[0].finish_reason
assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens <= MAX_TOKENS, r.usage
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
if r.choices[0].finish_reason == "length":
    assert r.usage.completion_tokens == MAX_TOKENS, r.usage
summary["chat_usage"] = r.usage.model_dump()

# max_completion_tokens is the newer name of max_tokens.
r2 = client.chat.completions.create(
    model="smollm2", messages=chat_messages(PROMPT), max_completion_tokens=MAX_TOKENS, temperature=0
)
assert r2.choices[0].message.content == EXPECTED
# The same prompt again: read from what the first request left in the cache (all but its last
# token, which is read again for its logits), with the same text.
assert r2.usage.prompt_tokens_details.cached_tokens == r2.usage.prompt_tokens - 1, r2.usage
assert r.usage.prompt_tokens_details.cached_tokens < r2.usage.prompt_tokens_details.cached_tokens

# Streamed: the chunks join to the same text, and the last chunk carries the usage.
chunks = list(
    client.chat.completions.create(
        model="smollm2",
        messages=chat_messages(PROMPT),
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
)
joined = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert joined == EXPECTED, (joined, EXPECTED)
assert chunks[0].choices[0].delta.role == "assistant"
assert chunks[-1].choices == [] and chunks[-1].usage is not None, chunks[-1]
assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens
assert chunks[-2].choices[0].finish_reason == r.choices[0].finish_reason
assert all(c.usage is None for c in chunks[:-1])
summary["stream_chunks"] = len(chunks)

# A seed makes sampling repeatable; stop sequences end the text before them.
seeded = [
    client.chat.completions.create(
        model="smollm2", messages=chat_messages(PROMPT), max_tokens=12, temperature=0.9, top_p=0.95, seed=7
    ).choices[0].message.content
    for _ in range(2)
]
assert seeded[0] == seeded[1], seeded
word = EXPECTED.split()[2]
stopped = client.chat.completions.create(
    model="smollm2", messages=chat_messages(PROMPT), max_tokens=MAX_TOKENS, temperature=0, stop=[word]
)
assert stopped.choices[0].finish_reason == "stop", stopped.choices[0]
assert word not in stopped.choices[0].message.content and EXPECTED.startswith(stopped.choices[0].message.content)

# Structured output: a JSON schema in OpenAI's wrapper is enforced, also streamed; json_object
# gives an object; other formats are refused.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["admin", "editor", "viewer"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 3},
    },
    "required": ["name", "age", "role", "tags"],
    "additionalProperties": False,
}
fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
people = []
for seed in range(3):
    r = client.chat.completions.create(
        model="smollm2", messages=chat_messages("Describe a person as JSON."), max_tokens=160,
        temperature=1.0, seed=seed, response_format=fmt,
    )
    person = json.loads(r.choices[0].message.content)
    jsonschema.validate(person, PERSON)
    people.append(person)
streamed = "".join(
    c.choices[0].delta.content or ""
    for c in client.chat.completions.create(
        model="smollm2", messages=chat_messages("Describe a person as JSON."), max_tokens=160,
        temperature=0, response_format=fmt, stream=True,
    )
    if c.choices
)
jsonschema.validate(json.loads(streamed), PERSON)
obj = client.chat.completions.create(
    model="smollm2", messages=chat_messages('Answer with the JSON object {"ok": true}.'), max_tokens=200,
    temperature=0, response_format={"type": "json_object"},
)
# Enforced while sampling: whatever the model writes is an object (once it has room to finish).
assert obj.choices[0].finish_reason == "stop", obj
assert isinstance(json.loads(obj.choices[0].message.content), dict), obj.choices[0].message.content
summary["structured"] = people

# Tool calls: two tools offered; the call names one of them with arguments that validate; the
# result sent back is answered in words; the same streamed and reassembled by the client's own
# accumulator; `none` and a forced function.
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
}
ADD = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The current weather in a city.", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": ADD}},
]
SCHEMAS = {"get_weather": WEATHER, "add": ADD}
ask = chat_messages("What is the weather in Paris?")


def check_calls(message):
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.type == "function" and call.id, call
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    return [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]


r = client.chat.completions.create(
    model="smollm2", messages=ask, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
    max_tokens=64, temperature=0,
)
assert r.choices[0].finish_reason == "tool_calls", r.choices[0]
calls = check_calls(r.choices[0].message)
assert len(calls) == 1, calls
assert r.choices[0].message.content is None, r.choices[0].message
call = r.choices[0].message.tool_calls[0]
history = ask + [
    {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
    {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 18, "sky": "sunny"})},
]
answer = client.chat.completions.create(
    model="smollm2", messages=history, tools=TOOLS, tool_choice="none", max_tokens=40, temperature=0
)
assert answer.choices[0].message.tool_calls is None, answer.choices[0].message
# Words, not a call or an imitation of the JSON turns (whether a 135M model uses the result
# well is its own affair; the guest test checks a greedy answer that does).
said = answer.choices[0].message.content
assert said.strip() and "{" not in said and answer.choices[0].finish_reason in ("stop", "length"), said
with client.chat.completions.stream(
    model="smollm2", messages=ask, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
    max_tokens=64, temperature=0,
) as s:
    deltas = [e for e in s if e.type == "chunk" and e.chunk.choices and e.chunk.choices[0].delta.tool_calls]
    final = s.get_final_completion()
# Every delta has an index; only the first of a call has its id.
parts = [tc for e in deltas for tc in e.chunk.choices[0].delta.tool_calls]
assert all(tc.index == 0 for tc in parts) and parts[0].id and all(tc.id is None for tc in parts[1:]), parts
assert final.choices[0].finish_reason == "tool_calls", final.choices[0]
assert check_calls(final.choices[0].message) == calls, (final.choices[0].message, calls)
assert final.choices[0].message.tool_calls[0].id == parts[0].id
forced = client.chat.completions.create(
    model="smollm2", messages=chat_messages("What is 17 plus 25?"), tools=TOOLS,
    tool_choice={"type": "function", "function": {"name": "add"}}, parallel_tool_calls=False,
    max_tokens=64, temperature=0,
)
assert [n for n, _ in check_calls(forced.choices[0].message)] == ["add"], forced.choices[0]
none = client.chat.completions.create(
    model="smollm2", messages=ask, tools=TOOLS, tool_choice="none", max_tokens=16, temperature=0
)
assert none.choices[0].message.tool_calls is None and none.choices[0].message.content, none.choices[0]
assert none.choices[0].finish_reason in ("stop", "length")
auto = client.chat.completions.create(
    model="smollm2", messages=ask, tools=TOOLS, parallel_tool_calls=False, max_tokens=64, temperature=0
)
if auto.choices[0].finish_reason == "tool_calls":
    check_calls(auto.choices[0].message)
else:
    assert auto.choices[0].message.content and not auto.choices[0].message.tool_calls, auto.choices[0]
summary["tools"] = {"required": calls, "answer": answer.choices[0].message.content, "auto": auto.choices[0].finish_reason}

# A completion, whole and streamed.
c = client.completions.create(model="smollm2", prompt="Once upon a time", max_tokens=8, temperature=0)
assert c.object == "text_completion" and c.choices[0].text, c
assert c.usage.completion_tokens <= 8 and c.choices[0].finish_reason in ("length", "stop")
cs = "".join(
    x.choices[0].text
    for x in client.completions.create(
        model="smollm2", prompt="Once upon a time", max_tokens=8, temperature=0, stream=True
    )
)
assert cs == c.choices[0].text, (cs, c.choices[0].text)
summary["completion"] = c.choices[0].text

# Embeddings: a string or a list, 576 dimensions, unit length (the client asks for base64).
for inp, n in (("red", 1), (["red", "blue", "a longer sentence about the sea"], 3)):
    e = client.embeddings.create(model="smollm2", input=inp)
    assert len(e.data) == n and [d.index for d in e.data] == list(range(n))
    for d in e.data:
        assert len(d.embedding) == 576, len(d.embedding)
        assert abs(math.sqrt(sum(x * x for x in d.embedding)) - 1) < 1e-3
    assert e.usage.prompt_tokens > 0
floats = client.embeddings.create(model="smollm2", input="red", encoding_format="float")
b64 = client.embeddings.create(model="smollm2", input="red")
assert max(abs(a - b) for a, b in zip(floats.data[0].embedding, b64.data[0].embedding)) < 1e-6

# Errors: the status, and the exception the client raises for it.
msgs = chat_messages("hi")
summary["errors"] = {
    "unknown model": expect_error(
        openai.NotFoundError, 404, lambda: client.chat.completions.create(model="nope", messages=msgs), "model_not_found"
    )["code"],
    "unknown model (retrieve)": expect_error(openai.NotFoundError, 404, lambda: client.models.retrieve("nope"))["code"],
    "temperature": expect_error(
        openai.BadRequestError, 400, lambda: client.chat.completions.create(model="smollm2", messages=msgs, temperature=5)
    )["param"],
    "n": expect_error(
        openai.BadRequestError, 400, lambda: client.chat.completions.create(model="smollm2", messages=msgs, n=2)
    )["param"],
    "empty messages": expect_error(
        openai.BadRequestError, 400, lambda: client.chat.completions.create(model="smollm2", messages=[])
    )["param"],
    "bad role": expect_error(
        openai.BadRequestError,
        400,
        lambda: client.chat.completions.create(model="smollm2", messages=[{"role": "wizard", "content": "x"}]),
    )["param"],
    "empty embedding input": expect_error(
        openai.BadRequestError, 400, lambda: client.embeddings.create(model="smollm2", input=[])
    )["param"],
    "oversize body": expect_error(
        openai.APIStatusError,
        413,
        lambda: client.chat.completions.create(model="smollm2", messages=chat_messages("x" * (9 << 20))),
        "request_too_large",
    )["code"],
    "bad response_format": expect_error(
        openai.BadRequestError, 400,
        lambda: client.chat.completions.create(
            model="smollm2", messages=chat_messages("Hi"), response_format={"type": "xml"}
        ),
    )["param"],
    "bad json schema": expect_error(
        openai.BadRequestError, 400,
        lambda: client.chat.completions.create(
            model="smollm2", messages=chat_messages("Hi"),
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}},
        ),
    )["param"],
    "tool type": expect_error(
        openai.BadRequestError, 400,
        lambda: client.chat.completions.create(model="smollm2", messages=msgs, tools=[{"type": "code_interpreter"}]),
    )["param"],
    "tool choice": expect_error(
        openai.BadRequestError, 400,
        lambda: client.chat.completions.create(
            model="smollm2", messages=msgs, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}
        ),
    )["param"],
    "tools with response_format": expect_error(
        openai.BadRequestError, 400,
        lambda: client.chat.completions.create(
            model="smollm2", messages=msgs, tools=TOOLS, response_format={"type": "json_object"}
        ),
    )["param"],
    "tool message without id": expect_error(
        openai.BadRequestError, 400,
        lambda: client.chat.completions.create(model="smollm2", messages=msgs + [{"role": "tool", "content": "x"}]),
    )["param"],
    "unknown route": expect_error(
        openai.NotFoundError, 404, lambda: client.get("/nothing/here", cast_to=httpx.Response)
    )["code"],
}
raw = httpx.post(BASE + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error", raw.text
raw = httpx.post(BASE + "/v1/chat/completions", json={"model": "smollm2", "messages": "hi"})
assert raw.status_code == 400 and raw.json()["error"]["param"] == "messages", raw.text
raw = httpx.get(BASE + "/v1/chat/completions")
assert raw.status_code == 405, raw.text

# At the concurrency limit: one request runs, the next is refused with 503 at once.
busy = openai.OpenAI(base_url=BUSY + "/v1", api_key="unused", max_retries=0, timeout=120)
holder = busy.chat.completions.create(
    model="smollm2", messages=chat_messages("Tell me a long story."), max_tokens=400, temperature=0, stream=True
)
next(iter(holder))
t = time.monotonic()
summary["errors"]["busy"] = expect_error(
    openai.InternalServerError, 503, lambda: busy.chat.completions.create(model="smollm2", messages=msgs, max_tokens=2), "server_busy"
)["code"]
assert time.monotonic() - t < 5
holder.close()

# Eight concurrent streaming clients get their full answers, the same as alone.
prompts = [f"Write a sentence about the number {i}." for i in range(8)]
solo = [
    client.chat.completions.create(model="smollm2", messages=chat_messages(p), max_tokens=48, temperature=0).choices[0].message.content
    for p in prompts
]
results = [None] * 8


def stream_one(i):
    s = client.chat.completions.create(
        model="smollm2", messages=chat_messages(prompts[i]), max_tokens=48, temperature=0, stream=True
    )
    results[i] = "".join(c.choices[0].delta.content or "" for c in s if c.choices)


t = time.monotonic()
threads = [threading.Thread(target=stream_one, args=(i,)) for i in range(8)]
for th in threads:
    th.start()
for th in threads:
    th.join()
assert results == solo, (results, solo)
summary["eight_concurrent_s"] = round(time.monotonic() - t, 2)

# One of eight long streams dropped mid-stream: its session ends, the others finish.
def health():
    return httpx.get(BASE + "/health").json()


abandoned_before = health()["requests"]["abandoned"]
done = [0] * 8
stamps = [[] for _ in range(8)]
stop_early = threading.Event()


def long_stream(i):
    s = client.chat.completions.create(
        model="smollm2", messages=chat_messages(prompts[i]), max_tokens=160, temperature=0, stream=True
    )
    for n, _ in enumerate(s):
        done[i] = n
        stamps[i].append(time.monotonic())
        if i == 0 and n == 3:
            stop_early.wait(60)
            s.close()
            return


threads = [threading.Thread(target=long_stream, args=(i,)) for i in range(8)]
for th in threads:
    th.start()
deadline = time.monotonic() + 60
most = 0
while time.monotonic() < deadline and most < 8:
    most = max(most, health()["models"][0]["sessions"])
    time.sleep(0.02)
assert most == 8, most
while done[0] < 3 and time.monotonic() < deadline:
    time.sleep(0.01)
stop_early.set()
dropped_at = time.monotonic()
fell = None
while time.monotonic() < deadline:
    h = health()
    if h["models"][0]["sessions"] <= 7:
        fell = h["models"][0]["sessions"]
        break
    time.sleep(0.01)
others_running = sum(1 for th in threads[1:] if th.is_alive())
assert fell is not None and fell <= 7, health()
for th in threads:
    th.join()
h = health()
assert h["models"][0]["sessions"] == 0, h
assert h["requests"]["abandoned"] == abandoned_before + 1, h
assert all(d > 3 for d in done[1:]), done


def rate(ts, lo, hi):
    inside = [t for t in ts if lo <= t < hi]
    return (len(inside) - 1) / (inside[-1] - inside[0]) if len(inside) > 2 else None


# The others' chunk rates over the two seconds before and after the drop (while all still ran).
first_end = min(st[-1] for st in stamps[1:])
before = [rate(st, dropped_at - 2, dropped_at) for st in stamps[1:]]
after = [rate(st, dropped_at + 0.2, min(dropped_at + 2.2, first_end)) for st in stamps[1:]]
pairs = [(b, a) for b, a in zip(before, after) if a and b]
summary["drop"] = {
    "sessions_after_drop": fell,
    "others_still_streaming": others_running,
    "others_chunks_per_s_before": round(statistics.mean(b for b, _ in pairs), 1) if pairs else None,
    "others_chunks_per_s_after": round(statistics.mean(a for _, a in pairs), 1) if pairs else None,
}
print(json.dumps(summary))
