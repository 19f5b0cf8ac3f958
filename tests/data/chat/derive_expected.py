#!/usr/bin/env python3
"""Writes derived.json: expected chat renders for the templates that have no
gold render in ../shared/fixtures (made with transformers there).

These are NOT made with transformers. Each case is rendered with jinja2 in the
environment transformers' apply_chat_template uses (chat_template_utils:
ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
raise_exception, strftime_now, tojson; render(messages=..., tools=None,
documents=None, add_generation_prompt=..., bos_token=..., eos_token=...,
**kwargs)), and each was also checked by reading the template source.
Cases marked "source": "extension" are aloe's own behaviour where the
template raises (Gemma 2 has no system role); their text is written here by
hand.

Run from the repository root:  python3 tests/data/chat/derive_expected.py [SHARED]
"""
import json
import os
import random
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[jinja2.ext.loopcontrols])
ENV.filters["tojson"] = tojson
ENV.globals["raise_exception"] = raise_exception
ENV.globals["strftime_now"] = strftime_now


def template_text(rel):
    path = os.path.join(SHARED, rel)
    if rel.endswith(".json"):
        return json.load(open(path))["chat_template"]
    return open(path).read()


S = {"role": "system", "content": "You are a terse assistant."}
U1 = {"role": "user", "content": "  What is 2+2?\n"}
A1 = {"role": "assistant", "content": "4."}
U2 = {"role": "user", "content": "And 3+3? {{ not jinja }}"}
A2 = {"role": "assistant", "content": " 6. "}
NBSP_U = {"role": "user", "content": "\u00a0 Hi\u2003there \u3000\n"}
NBSP_S = {"role": "system", "content": "\u2002Be kind.\u00a0"}

GEMMA = "tokenizer-data/chat-templates/google-gemma-2-2b-it.jinja"
L31 = "tokenizer-data/chat-templates/meta-llama-Llama-3.1-8B-Instruct.jinja"
L32 = "tokenizer-data/chat-templates/meta-llama-Llama-3.2-3B-Instruct.jinja"
PHI = "tokenizer-data/chat-templates/microsoft-Phi-3.5-mini-instruct.jinja"
NEMO = "tokenizer-data/chat-templates/mistralai-Mistral-Nemo-Instruct-2407.jinja"
QWEN25 = "tokenizer-data/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja"
QWEN3 = "tokenizer-data/qwen3/tokenizer_config.json"
LLAMA3 = "tokenizer-data/llama3/tokenizer_config.json"

LLAMA_BOS, LLAMA_EOS = "<|begin_of_text|>", "<|eot_id|>"
# (name, template, bos, eos, messages, add_generation_prompt, kwargs)
CASES = [
    ("gemma-3turns-gen", GEMMA, "<bos>", "<eos>", [U1, A1, U2], True, {}),
    ("gemma-4turns", GEMMA, "<bos>", "<eos>", [U1, A1, U2, A2], False, {}),
    ("gemma-unicode-trim", GEMMA, "<bos>", "<eos>", [NBSP_U], True, {}),
    ("llama3.2-system-gen", L32, LLAMA_BOS, LLAMA_EOS, [S, U1, A1, U2], True,
     {"date_string": "26 Nov 2026"}),
    ("llama3.2-nosystem", L32, LLAMA_BOS, LLAMA_EOS, [U1, A1, U2, A2], False,
     {"date_string": "26 Nov 2026"}),
    ("llama3.1-date-unicode-trim", L31, LLAMA_BOS, LLAMA_EOS, [NBSP_S, NBSP_U], True,
     {"date_string": "01 Jan 2025"}),
    ("phi3.5-system-gen", PHI, None, "<|endoftext|>", [S, U1, A1, U2], True, {}),
    ("phi3.5-eos-at-end", PHI, None, "<|endoftext|>", [U1, A1], False, {}),
    ("phi3.5-empty-system", PHI, None, "<|endoftext|>",
     [{"role": "system", "content": ""}, U1], True, {}),
    ("nemo-system-last-user", NEMO, "<s>", "</s>", [S, U1, A1, U2], True, {}),
    ("nemo-system-dropped-after-reply", NEMO, "<s>", "</s>", [S, U1, A1], False, {}),
    ("nemo-no-system", NEMO, "<s>", "</s>", [U1, A1, U2, A2], False, {}),
    ("qwen2.5-untrimmed-default-system", QWEN25, None, "<|im_end|>", [U1], True, {}),
    ("qwen2.5-later-system", QWEN25, None, "<|im_end|>",
     [S, U1, A1, {"role": "system", "content": "Be brief."}, U2], True, {}),
    ("qwen3-strip-earlier-think", QWEN3, None, "<|im_end|>",
     [U1, {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4."}, U2,
      {"role": "assistant", "content": "<think>\n\nadd again\n\n</think>\n\n\n6."}], False, {}),
    ("qwen3-no-thinking-gen", QWEN3, None, "<|im_end|>",
     [S, U1, {"role": "assistant", "content": "<think>x</think>4."}, U2], True,
     {"enable_thinking": False}),
    ("qwen3-after-tool-response", QWEN3, None, "<|im_end|>",
     [U1, {"role": "assistant", "content": "pre<think>a\n</think>b"},
      {"role": "user", "content": "<tool_response>r</tool_response>"},
      {"role": "assistant", "content": "plain"}, {"role": "user", "content": "next"},
      {"role": "assistant", "content": "<think>c</think>\nd</think>e"}], False, {}),
    ("qwen3-last-user-is-tool-response", QWEN3, None, "<|im_end|>",
     [U1, {"role": "assistant", "content": "pre<think>a\n</think>b"},
      {"role": "user", "content": "<tool_response>r</tool_response>"},
      {"role": "assistant", "content": "<think>c</think>d"}], False, {}),
    ("qwen3-assistant-first", QWEN3, None, "<|im_end|>",
     [{"role": "assistant", "content": "Hello!"}, U1], True, {}),
    ("llama3-always-gen-header", LLAMA3, LLAMA_BOS, "<|end_of_text|>", [S, U1], False, {}),
    ("llama3-gen", LLAMA3, LLAMA_BOS, "<|end_of_text|>", [U1, A1, NBSP_U], True, {}),
]

# Gemma 2's template raises "System role not supported"; aloe prepends the
# system message to the first user turn (Gemma 3's rule): system content,
# "\n\n", then the user content trimmed.
EXTENSIONS = [
    ("gemma-system-prepended", GEMMA, "<bos>", "<eos>", [S, U1, A1, U2], True, {},
     "<bos><start_of_turn>user\nYou are a terse assistant.\n\nWhat is 2+2?<end_of_turn>\n"
     "<start_of_turn>model\n4.<end_of_turn>\n"
     "<start_of_turn>user\nAnd 3+3? {{ not jinja }}<end_of_turn>\n<start_of_turn>model\n"),
]


# Random conversations over fragments that exercise trimming (Unicode
# whitespace Python strips, and some it does not), <think> splitting and
# text that looks like template syntax.
FRAGMENTS = ["", " ", "\n", "\n\n", "\t", "\u00a0", "\u3000", "\u2028", "\u200b", "\ufeff",
             "<think>", "</think>", "<tool_response>", "</tool_response>", "a", "é", "日本",
             "{{ x }}", "{% if %}", "[INST]", "<|im_end|>", "'\"", "\\n"]
FUZZ_TEMPLATES = [
    ("qwen2.5", QWEN25, None, "<|im_end|>", True),
    ("qwen3", QWEN3, None, "<|im_end|>", True),
    ("llama3", LLAMA3, LLAMA_BOS, "<|end_of_text|>", True),
    ("llama3.1", L31, LLAMA_BOS, LLAMA_EOS, True),
    ("llama3.2", L32, LLAMA_BOS, LLAMA_EOS, True),
    ("gemma", GEMMA, "<bos>", "<eos>", False),  # Gemma 2 raises on a system message
    ("phi3.5", PHI, None, "<|endoftext|>", True),
    ("nemo", NEMO, "<s>", "</s>", True),
]


def fuzz_cases(seed=1234):
    rng = random.Random(seed)

    def text():
        return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 4)))

    cases = []
    for name, tpl, bos, eos, system_ok in FUZZ_TEMPLATES:
        for k in range(24 if name == "qwen3" else 8):  # Qwen3: more <think> splits
            msgs = []
            if system_ok and rng.random() < 0.5:
                msgs.append({"role": "system", "content": text()})
            for t in range(rng.randint(1, 5)):
                content = text()
                if name == "qwen3" and t % 2 == 1 and rng.random() < 0.7:
                    content = text() + "<think>" + text() + "</think>" + text()
                msgs.append({"role": "user" if t % 2 == 0 else "assistant", "content": content})
            agp = rng.random() < 0.5
            kw = {"date_string": "0%d Apr 2025" % (k + 1)} if name.startswith("llama3.") else {}
            if name == "qwen3" and rng.random() < 0.5:
                kw = {"enable_thinking": False}
            cases.append(("fuzz-%s-%d" % (name, k), tpl, bos, eos, msgs, agp, kw))
    return cases


def main():
    out = []
    for name, tpl, bos, eos, msgs, agp, kw in CASES + fuzz_cases():
        text = ENV.from_string(template_text(tpl)).render(
            messages=msgs, tools=None, documents=None, add_generation_prompt=agp,
            bos_token=bos, eos_token=eos, **kw)
        out.append({"name": name, "template": tpl, "bos": bos, "eos": eos, "messages": msgs,
                    "add_generation_prompt": agp, "kwargs": kw, "text": text,
                    "source": "jinja2 " + jinja2.__version__})
    for name, tpl, bos, eos, msgs, agp, kw, text in EXTENSIONS:
        out.append({"name": name, "template": tpl, "bos": bos, "eos": eos, "messages": msgs,
                    "add_generation_prompt": agp, "kwargs": kw, "text": text,
                    "source": "extension"})
    with open(os.path.join(os.path.dirname(__file__), "derived.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
