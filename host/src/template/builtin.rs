//! Built-in chat templates, for model files without one (or with a broken one), by the names
//! llama.cpp and model cards use. Each is the family's common form in Jinja.

/// ChatML (SmolLM, Qwen, many fine-tunes).
const CHATML: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n\
{{ message['content'] }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Llama 3.x, without tool use.
const LLAMA3: &str = "{{ bos_token }}{% for message in messages %}\
<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>\
{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

/// Llama 2 chat: `[INST]` turns, the system prompt inside the first.
const LLAMA2: &str = "{% if messages[0]['role'] == 'system' %}\
{% set system = '<<SYS>>\n' + messages[0]['content'] + '\n<</SYS>>\n\n' %}{% set turns = messages[1:] %}\
{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}\
{% for message in turns %}{% if message['role'] == 'user' %}\
{{ bos_token }}[INST] {{ (system if loop.first else '') + message['content'] | trim }} [/INST]\
{% elif message['role'] == 'assistant' %} {{ message['content'] | trim }} {{ eos_token }}\
{% else %}{{ raise_exception('llama2 turns are user or assistant, after an optional system message') }}\
{% endif %}{% endfor %}";

/// Gemma (2 and 3): `user` and `model` turns, the system prompt put before the first user turn.
const GEMMA: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}\
{% set first = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}\
{% else %}{% set first = '' %}{% set turns = messages %}{% endif %}\
{% for message in turns %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\
{{ raise_exception('gemma conversations alternate user and assistant turns') }}{% endif %}\
<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n\
{{ (first if loop.first else '') + message['content'] | trim }}<end_of_turn>\n{% endfor %}\
{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

/// Mistral instruct (v3 style): `[INST]` turns, the system prompt before the last user turn.
const MISTRAL: &str = "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}\
{% set turns = messages[1:] %}{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}\
{{ bos_token }}{% for message in turns %}{% if message['role'] == 'user' %}\
{% if loop.last and system %}[INST] {{ system }}\n\n{{ message['content'] }}[/INST]\
{% else %}[INST] {{ message['content'] }}[/INST]{% endif %}\
{% elif message['role'] == 'assistant' %}{{ message['content'] }}{{ eos_token }}\
{% else %}{{ raise_exception('mistral turns are user or assistant, after an optional system message') }}\
{% endif %}{% endfor %}";

/// Phi-3.
const PHI3: &str = "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n\
{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/// Zephyr.
const ZEPHYR: &str = "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\
{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/// The built-in templates: (name, Jinja source).
pub const BUILTIN: &[(&str, &str)] = &[
    ("chatml", CHATML),
    ("gemma", GEMMA),
    ("llama2", LLAMA2),
    ("llama3", LLAMA3),
    ("mistral", MISTRAL),
    ("phi3", PHI3),
    ("zephyr", ZEPHYR),
];
