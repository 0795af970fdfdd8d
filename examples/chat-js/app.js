// Chat with a granted model, in JavaScript: the twin of examples/chat (same options, same
// output). Streams the reply to stdout, usage and speed to stderr. Built into a component with
// componentize-js from the repository's WIT (world `tabagent:llm/app`); see build.sh beside it.
//
// Options: --model NAME (default: the first granted model), --system TEXT, --max-tokens N (256),
// --temperature T (0.7), --seed N; the prompt is the other arguments, or stdin when there are
// none. Errors of the model interface are thrown as exceptions whose `payload` is the
// interface's `error` variant ({ tag: 'not-granted', val: message }, …); they are printed as
// `chat: <kind>: <message>`, exit code 1.

import { Model, granted } from 'tabagent:llm/models@0.2.0';
import { Session } from 'tabagent:llm/inference@0.2.0';
import { getArguments } from 'wasi:cli/environment@0.2.12';
import { exit, exitWithCode } from 'wasi:cli/exit@0.2.12';
import { getStdin } from 'wasi:cli/stdin@0.2.12';
import { getStdout } from 'wasi:cli/stdout@0.2.12';
import { getStderr } from 'wasi:cli/stderr@0.2.12';

const KINDS = {
  'not-granted': 'not granted',
  'not-found': 'not found',
  'invalid-input': 'invalid input',
  'unsupported': 'unsupported',
  'resource-exhausted': 'resource exhausted',
  'unloaded': 'unloaded',
  'runtime': 'runtime error',
};

const encoder = new TextEncoder();
// Streams are taken when first written: the module's top level runs while the component is
// built (a snapshot), where no import may be called.
let out;
let err;
const stdout = () => (out ??= getStdout());
const stderr = () => (err ??= getStderr());

function write(stream, text) {
  stream = stream();
  const bytes = encoder.encode(text);
  // blocking-write-and-flush takes at most 4096 bytes at a time.
  for (let i = 0; i < bytes.length; i += 4096) {
    stream.blockingWriteAndFlush(bytes.subarray(i, i + 4096));
  }
}

class UsageError extends Error {}

function readStdin() {
  const input = getStdin();
  const chunks = [];
  for (;;) {
    try {
      chunks.push(input.blockingRead(65536n));
    } catch (e) {
      break; // closed
    }
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}

function parseArgs(argv) {
  const o = { model: undefined, system: undefined, maxTokens: 256, temperature: 0.7, seed: undefined };
  const words = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const flags = { '--model': 'model', '--system': 'system', '--max-tokens': 'maxTokens', '--temperature': 'temperature', '--seed': 'seed' };
    if (arg in flags) {
      const value = argv[++i];
      if (value === undefined) throw new UsageError(`${arg} needs a value`);
      const key = flags[arg];
      if (key === 'maxTokens') {
        if (!/^\d+$/.test(value)) throw new UsageError(`${arg}: invalid digit found in string`);
        o.maxTokens = Number(value);
      } else if (key === 'seed') {
        if (!/^\d+$/.test(value)) throw new UsageError(`${arg}: invalid digit found in string`);
        o.seed = BigInt(value);
      } else if (key === 'temperature') {
        const t = Number(value);
        if (Number.isNaN(t)) throw new UsageError(`${arg}: invalid float literal`);
        o.temperature = t;
      } else {
        o[key] = value;
      }
    } else {
      words.push(arg);
    }
  }
  o.prompt = words.join(' ');
  if (!o.prompt.trim()) o.prompt = readStdin().trim();
  if (!o.prompt) throw new UsageError('no prompt: pass it as arguments or on stdin');
  return o;
}

function chat(o) {
  let name = o.model;
  if (name === undefined) {
    name = granted()[0];
    if (name === undefined) {
      const e = new Error('no model was granted');
      e.payload = { tag: 'not-granted', val: 'no model was granted; use --model NAME=PATH' };
      throw e;
    }
  }
  const model = Model.load(name, undefined);
  const messages = [];
  if (o.system !== undefined) messages.push({ role: 'system', content: o.system, toolCalls: [] });
  messages.push({ role: 'user', content: o.prompt, toolCalls: [] });
  const session = Session.create(model, {});
  const completion = session.stream({ tag: 'chat', val: messages }, {
    maxTokens: o.maxTokens,
    temperature: o.temperature,
    seed: o.seed,
    stop: [],
    tools: [],
  });
  for (let piece; (piece = completion.next()) !== undefined;) {
    write(stdout, piece);
  }
  write(stdout, '\n');
  const g = completion.outcome();
  if (g !== undefined) {
    const u = g.usage;
    write(stderr,
      `[${name}] prompt ${u.promptTokens} tokens (${u.promptTokensPerSecond.toFixed(1)} tok/s), ` +
      `generated ${u.generatedTokens} tokens (${u.tokensPerSecond.toFixed(1)} tok/s), finish: ${g.finishReason}\n`);
  }
}

export const run = {
  run() {
    let options;
    try {
      options = parseArgs(getArguments().slice(1));
    } catch (e) {
      write(stderr, `chat: ${e.message}\n`);
      exitWithCode(2);
      return;
    }
    try {
      chat(options);
    } catch (e) {
      if (e.payload === undefined) throw e;
      write(stderr, `chat: ${KINDS[e.payload.tag] ?? e.payload.tag}: ${e.payload.val}\n`);
      exit({ tag: 'err' });
    }
  },
};
