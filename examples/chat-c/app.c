// Chat with a granted model, in C: the twin of examples/chat (same options, same output).
// Streams the reply to stdout, usage and speed to stderr. Built with Debian's clang and
// wasi-libc against C bindings that wit-bindgen generates from the repository's WIT (world
// `tabagent:llm/app`); see build.sh beside it.
//
// Options: --model NAME (default: the first granted model), --system TEXT, --max-tokens N (256),
// --temperature T (0.7), --seed N; the prompt is the other arguments. Calls of the model
// interface return false and fill in an `error` variant; it is printed as
// `chat: <kind>: <message>`, exit code 1.

#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *KINDS[] = {"not granted", "not found", "invalid input", "unsupported",
                              "resource exhausted", "unloaded", "runtime error"};
static const char *FINISH[] = {"stop", "length", "stop-sequence", "cancelled"};

static void fail(tabagent_llm_types_error_t *e) {
  // Every case of the variant holds one string, at the same place.
  app_string_t *m = &e->val.not_granted;
  fprintf(stderr, "chat: %s: %.*s\n", e->tag < 7 ? KINDS[e->tag] : "error", (int)m->len,
          (const char *)m->ptr);
  fflush(stderr);
  wasi_cli_exit_exit_with_code(1);
}

static void usage(const char *why) {
  fprintf(stderr, "chat: %s\n", why);
  fflush(stderr);
  wasi_cli_exit_exit_with_code(2);
}

static char *str(app_string_t *s) {
  char *c = malloc(s->len + 1);
  memcpy(c, s->ptr, s->len);
  c[s->len] = 0;
  return c;
}

bool exports_wasi_cli_run_run(void) {
  app_list_string_t args;
  wasi_cli_environment_get_arguments(&args);
  const char *model_name = NULL, *system = NULL;
  tabagent_llm_inference_sampling_options_t opts = {0};
  opts.max_tokens = (app_option_u32_t){true, 256};
  opts.temperature = (app_option_f32_t){true, 0.7f};
  size_t cap = 1;
  for (size_t i = 1; i < args.len; i++) cap += args.ptr[i].len + 1;
  char *prompt = calloc(cap, 1);
  for (size_t i = 1; i < args.len; i++) {
    char *a = str(&args.ptr[i]);
    int takes = !strcmp(a, "--model") || !strcmp(a, "--system") || !strcmp(a, "--max-tokens") ||
                !strcmp(a, "--temperature") || !strcmp(a, "--seed");
    if (takes) {
      if (i + 1 >= args.len) {
        char why[64];
        snprintf(why, sizeof why, "%s needs a value", a);
        usage(why);
      }
      char *v = str(&args.ptr[++i]), *end = NULL;
      if (!strcmp(a, "--model")) model_name = v;
      else if (!strcmp(a, "--system")) system = v;
      else if (!strcmp(a, "--max-tokens")) opts.max_tokens.val = (uint32_t)strtoul(v, &end, 10);
      else if (!strcmp(a, "--temperature")) opts.temperature.val = strtof(v, &end);
      else opts.seed = (app_option_u64_t){true, strtoull(v, &end, 10)};
      if (end != NULL && (*end != 0 || end == v)) {
        char why[64];
        snprintf(why, sizeof why, "%s: not a number", a);
        usage(why);
      }
    } else {
      if (prompt[0]) strcat(prompt, " ");
      strcat(prompt, a);
    }
  }
  if (!prompt[0]) usage("no prompt: pass it as arguments");

  app_string_t name;
  if (model_name) {
    app_string_dup(&name, model_name);
  } else {
    app_list_string_t granted;
    tabagent_llm_models_granted(&granted);
    if (granted.len == 0) {
      tabagent_llm_types_error_t e = {TABAGENT_LLM_TYPES_ERROR_NOT_GRANTED};
      app_string_set(&e.val.not_granted, "no model was granted; use --model NAME=PATH");
      fail(&e);
    }
    app_string_dup_n(&name, (const char *)granted.ptr[0].ptr, granted.ptr[0].len);
  }
  tabagent_llm_types_error_t err;
  tabagent_llm_models_own_model_t model;
  if (!tabagent_llm_models_static_model_load(&name, NULL, &model, &err)) fail(&err);
  tabagent_llm_inference_session_options_t session_opts = {0};
  tabagent_llm_inference_own_session_t session;
  if (!tabagent_llm_inference_static_session_create(tabagent_llm_models_borrow_model(model),
                                                     &session_opts, &session, &err))
    fail(&err);

  tabagent_llm_models_chat_message_t messages[2] = {0};
  size_t n = 0;
  if (system) {
    app_string_set(&messages[n].role, "system");
    app_string_set(&messages[n++].content, system);
  }
  app_string_set(&messages[n].role, "user");
  app_string_set(&messages[n++].content, prompt);
  tabagent_llm_inference_prompt_t p = {TABAGENT_LLM_INFERENCE_PROMPT_CHAT};
  p.val.chat = (tabagent_llm_inference_list_chat_message_t){messages, n};
  tabagent_llm_inference_own_completion_t completion;
  if (!tabagent_llm_inference_method_session_stream(tabagent_llm_inference_borrow_session(session),
                                                     &p, &opts, &completion, &err))
    fail(&err);
  tabagent_llm_inference_borrow_completion_t c = tabagent_llm_inference_borrow_completion(completion);
  for (;;) {
    app_option_string_t piece;
    if (!tabagent_llm_inference_method_completion_next(c, &piece, &err)) fail(&err);
    if (!piece.is_some) break;
    fwrite(piece.val.ptr, 1, piece.val.len, stdout);
    fflush(stdout);
    app_option_string_free(&piece);
  }
  fputc('\n', stdout);
  fflush(stdout);
  tabagent_llm_inference_generation_t g;
  if (tabagent_llm_inference_method_completion_outcome(c, &g)) {
    tabagent_llm_inference_usage_t *u = &g.usage;
    fprintf(stderr,
            "[%.*s] prompt %u tokens (%.1f tok/s), generated %u tokens (%.1f tok/s), finish: %s\n",
            (int)name.len, (const char *)name.ptr, u->prompt_tokens, u->prompt_tokens_per_second,
            u->generated_tokens, u->tokens_per_second, FINISH[g.finish_reason & 3]);
    fflush(stderr);
    tabagent_llm_inference_generation_free(&g);
  }
  tabagent_llm_inference_completion_drop_own(completion);
  tabagent_llm_inference_session_drop_own(session);
  tabagent_llm_models_model_drop_own(model);
  return true;
}
