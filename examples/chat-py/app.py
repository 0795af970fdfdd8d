"""Chat with a granted model, in Python: the twin of examples/chat (same options, same output).

Streams the reply to stdout, usage and speed to stderr. Built into a component with
componentize-py from the repository's WIT (world `tabagent:llm/app`); see build.sh beside it.

Options: --model NAME (default: the first granted model), --system TEXT, --max-tokens N (256),
--temperature T (0.7), --seed N; the prompt is the other arguments, or stdin when there are none.
Errors of the model interface arrive as `componentize_py_types.Err` exceptions carrying the
interface's `error` variant; they are printed as `chat: <kind>: <message>`, exit code 1.
"""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import exit as wasi_exit
from wit_world.imports import inference, models
from wit_world.imports import tabagent_llm_types as types

KINDS = {
    types.Error_NotGranted: "not granted",
    types.Error_NotFound: "not found",
    types.Error_InvalidInput: "invalid input",
    types.Error_Unsupported: "unsupported",
    types.Error_ResourceExhausted: "resource exhausted",
    types.Error_Unloaded: "unloaded",
    types.Error_Runtime: "runtime error",
}

FINISH = {
    inference.FinishReason.STOP: "stop",
    inference.FinishReason.LENGTH: "length",
    inference.FinishReason.STOP_SEQUENCE: "stop-sequence",
    inference.FinishReason.CANCELLED: "cancelled",
}


class UsageError(Exception):
    pass


def parse_args(argv):
    opts = {"model": None, "system": None, "max_tokens": 256, "temperature": 0.7, "seed": None}
    words = []
    args = iter(argv)
    for arg in args:
        if arg in ("--model", "--system", "--max-tokens", "--temperature", "--seed"):
            value = next(args, None)
            if value is None:
                raise UsageError(f"{arg} needs a value")
            key = arg[2:].replace("-", "_")
            try:
                if key in ("max_tokens", "seed"):
                    value = int(value)
                elif key == "temperature":
                    value = float(value)
            except ValueError as e:
                raise UsageError(f"{arg}: {e}")
            opts[key] = value
        else:
            words.append(arg)
    prompt = " ".join(words)
    if not prompt.strip():
        prompt = sys.stdin.read().strip()
    if not prompt:
        raise UsageError("no prompt: pass it as arguments or on stdin")
    opts["prompt"] = prompt
    return opts


def chat(o):
    name = o["model"]
    if name is None:
        granted = models.granted()
        if not granted:
            raise Err(types.Error_NotGranted("no model was granted; use --model NAME=PATH"))
        name = granted[0]
    model = models.Model.load(name, None)
    messages = []
    if o["system"] is not None:
        messages.append(models.ChatMessage("system", o["system"], [], None))
    messages.append(models.ChatMessage("user", o["prompt"], [], None))
    session = inference.Session.create(model, inference.SessionOptions(None, None, None, None, None))
    options = inference.SamplingOptions(
        max_tokens=o["max_tokens"],
        temperature=o["temperature"],
        top_k=None,
        top_p=None,
        min_p=None,
        repeat_penalty=None,
        repeat_window=None,
        seed=o["seed"],
        stop=[],
        grammar=None,
        json_schema=None,
        tools=[],
        tool_choice=None,
        parallel_tool_calls=None,
    )
    completion = session.stream(inference.Prompt_Chat(messages), options)
    while (piece := completion.next()) is not None:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    g = completion.outcome()
    if g is not None:
        u = g.usage
        print(
            f"[{name}] prompt {u.prompt_tokens} tokens ({u.prompt_tokens_per_second:.1f} tok/s), "
            f"generated {u.generated_tokens} tokens ({u.tokens_per_second:.1f} tok/s), "
            f"finish: {FINISH[g.finish_reason]}",
            file=sys.stderr,
        )


class Run(exports.Run):
    def run(self) -> None:
        try:
            options = parse_args(sys.argv[1:])
        except UsageError as e:
            print(f"chat: {e}", file=sys.stderr)
            wasi_exit.exit_with_code(2)
            return
        try:
            chat(options)
        except Err as e:
            kind = KINDS.get(type(e.value), "error")
            print(f"chat: {kind}: {e.value.value}", file=sys.stderr)
            sys.stderr.flush()
            wasi_exit.exit(Err(None))
