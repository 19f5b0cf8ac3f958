#!/usr/bin/env python3
"""Writes the expected renders of the real chat templates in tests/data/templates/.

For each NAME.jinja there, renders a few conversations with jinja2 configured
as transformers configures it (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, the loopcontrols extension, the {% generation %} tag, its
tojson, raise_exception and strftime_now) and writes NAME.expected.json:
  {"template": "NAME.jinja", "cases": [{"name", "vars", "output" | "error"}]}
"vars" are exactly the variables passed to render (transformers passes
messages, tools, documents, add_generation_prompt, the special tokens and any
extra kwargs). strftime_now formats a fixed time, NOW (UTC), so renders do not
depend on the day. tests/tok/test_jinja_real.c renders the same with aloe's
interpreter and compares byte for byte; the test suite needs no Python.

Usage: scripts/render_templates.py [DIR]   (default tests/data/templates)
Needs python3-jinja2 (Debian's package is enough).
"""
import datetime
import glob
import json
import os
import sys

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

NOW = datetime.datetime(2024, 7, 26, 12, 0, 0)  # 1721995200 as a Unix time (UTC)


class GenerationTag(Extension):
    """transformers' AssistantTracker: {% generation %}...{% endgeneration %}
    renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # as transformers' chat_template_utils: json.dumps, no HTML escaping
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# Special tokens per template (the tokenizer's bos/eos texts); default <s> </s>.
TOKENS = {
    "Qwen": (None, "<|im_end|>"),
    "teknium": (None, "<|im_end|>"),
    "NousResearch": ("<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama": ("<|begin_of_text|>", "<|eot_id|>"),
    "fireworks": ("<|begin_of_text|>", "<|eot_id|>"),
    "meetkai": ("<|begin_of_text|>", "<|eot_id|>"),
    "deepseek-ai-DeepSeek-R1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "llama-cpp-deepseek-r1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-ai-DeepSeek-V2": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-ai-deepseek-coder": ("<｜begin▁of▁sentence｜>", "<|EOT|>"),
    "google": ("<bos>", "<eos>"),
    "microsoft-phi-4": ("<|endoftext|>", "<|im_end|>"),
    "microsoft": ("<s>", "<|endoftext|>"),
    "CohereForAI": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "ibm-granite": ("<|end_of_text|>", "<|end_of_text|>"),
    "THUDM": ("[gMASK]<sop>", "<|endoftext|>"),
}

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}]

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello! What's 2+2?"}
A1 = {"role": "assistant", "content": "  2 + 2 = 4.  "}
U2 = {"role": "user", "content": "And in French, s'il te plaît? \"Quatre\" — ünïcode ✓"}
A2 = {"role": "assistant", "content": "Quatre."}


def cases(text):
    out = [
        ("plain", {"messages": [U1], "add_generation_prompt": True}),
        ("system", {"messages": [SYSTEM, U1], "add_generation_prompt": True}),
        ("multi_turn", {"messages": [SYSTEM, U1, A1, U2], "add_generation_prompt": True}),
        ("no_gen_prompt", {"messages": [U1, A1, U2, A2], "add_generation_prompt": False}),
        ("no_system_multi", {"messages": [U1, A1, U2], "add_generation_prompt": True}),
    ]
    if "tools" in text:
        call = {"role": "assistant", "content": "",
                "tool_calls": [{"id": "abc123xyz", "type": "function",
                                "function": {"name": "get_weather",
                                             "arguments": {"city": "Paris", "unit": "celsius"}}}]}
        result = {"role": "tool", "name": "get_weather", "tool_call_id": "abc123xyz",
                  "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"}
        out.append(("tools", {"messages": [SYSTEM, {"role": "user", "content": "Weather in Paris?"}],
                              "tools": TOOLS, "add_generation_prompt": True}))
        out.append(("tool_call", {"messages": [{"role": "user", "content": "Weather in Paris?"}, call,
                                               result],
                                  "tools": TOOLS, "add_generation_prompt": True}))
    if "enable_thinking" in text:
        out.append(("no_thinking", {"messages": [U1], "add_generation_prompt": True,
                                    "enable_thinking": False}))
        out.append(("thinking_history", {"messages": [
            U1, {"role": "assistant", "content": "<think>\nSimple sum.\n</think>\n\n4."}, U2],
            "add_generation_prompt": True, "enable_thinking": True}))
    return out


def tokens_for(name):
    best = ("<s>", "</s>")
    best_len = -1
    for prefix, toks in TOKENS.items():
        if name.startswith(prefix) and len(prefix) > best_len:
            best, best_len = toks, len(prefix)
    return best


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests",
                                                           "data", "templates")
    env = make_env()
    for path in sorted(glob.glob(os.path.join(d, "*.jinja"))):
        name = os.path.basename(path)[:-len(".jinja")]
        text = open(path, encoding="utf-8").read()
        tpl = env.from_string(text)
        bos, eos = tokens_for(name)
        rec = {"template": name + ".jinja", "cases": []}
        for cname, kw in cases(text):
            v = {"messages": kw["messages"], "tools": kw.get("tools"), "documents": None,
                 "add_generation_prompt": kw["add_generation_prompt"]}
            if bos is not None:
                v["bos_token"] = bos
            if eos is not None:
                v["eos_token"] = eos
            for k, x in kw.items():
                if k not in v:
                    v[k] = x
            case = {"name": cname, "vars": v}
            try:
                case["output"] = tpl.render(**json.loads(json.dumps(v)))
            except jinja2.exceptions.TemplateError as e:
                case["error"] = str(e)
            except Exception as e:  # a template bug on this input (e.g. a TypeError)
                case["error"] = "%s: %s" % (type(e).__name__, e)
            rec["cases"].append(case)
        with open(os.path.join(d, name + ".expected.json"), "w", encoding="utf-8") as f:
            json.dump(rec, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print("%-55s %s" % (name, " ".join(c["name"] + ("!" if "error" in c else "") for c in rec["cases"])))


if __name__ == "__main__":
    main()
