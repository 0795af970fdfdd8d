"""Render a chat template as Hugging Face's `apply_chat_template` does (transformers'
`_compile_jinja_template`): reads one JSON request on stdin, {"template", "messages",
"add_generation_prompt", "bos_token", "eos_token", "tools"?}, writes {"ok": text} or
{"error": message} on stdout."""

import json
import sys
from datetime import datetime, timezone

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    # The host's clock for templates is UTC.
    return datetime.now(timezone.utc).strftime(format)


def main():
    req = json.load(sys.stdin)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    ctx = {k: req[k] for k in ("messages", "add_generation_prompt", "bos_token", "eos_token")}
    if req.get("tools") is not None:
        ctx["tools"] = json.loads(req["tools"])
    try:
        out = {"ok": env.from_string(req["template"]).render(**ctx)}
    except TemplateError as e:
        out = {"error": str(e)}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
