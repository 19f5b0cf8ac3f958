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
    "allenai-OLMo-2": ("<|endoftext|>", "<|endoftext|>"),
    "HuggingFaceTB-SmolLM2": ("<|im_start|>", "<|im_end|>"),
    "microsoft-Phi-4-mini": ("<|endoftext|>", "<|endoftext|>"),
    "meta-llama-Llama-2": ("<s>", "</s>"),
    "TheBloke-deepseek": ("<｜begin▁of▁sentence｜>", "<|EOT|>"),
    "moonshotai": ("[BOS]", "[EOS]"),
    "deepseek-ai-DeepSeek-V3": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "LGAI-EXAONE": ("[BOS]", "[|endofturn|]"),
    "meta-llama-Llama-4": ("<|begin_of_text|>", "<|eot|>"),
    "zai-org": (None, "<|endoftext|>"),
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

DOCUMENTS = [{"doc_id": 1, "title": "Paris", "text": "Paris is the capital of France."},
             {"doc_id": 2, "title": "Lyon", "text": "Lyon is known for its cuisine."}]

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
    if "documents" in text:
        out.append(("documents", {"messages": [{"role": "user", "content": "What is the capital of France?"}],
                                  "documents": DOCUMENTS, "add_generation_prompt": True}))
        out.append(("documents_controls", {"messages": [{"role": "user", "content": "Capital?"}],
                                           "documents": DOCUMENTS, "controls": {"citations": True,
                                                                                "length": "short"},
                                           "add_generation_prompt": True}))
    if "thinking" in text and "enable_thinking" not in text:  # Granite 3.2/3.3's thinking flag
        out.append(("thinking", {"messages": [U1], "add_generation_prompt": True, "thinking": True}))
    if "is string" in text or "['text']" in text or ".text" in text:
        # content as a list of parts (multimodal templates, Gemma 3)
        parts = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                 {"role": "user", "content": [{"type": "text", "text": "Describe: "},
                                              {"type": "text", "text": " two parts "}]},
                 {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
                 {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And this?"}]}]
        out.append(("content_parts", {"messages": parts, "add_generation_prompt": True}))
    if "message['tools']" in text or "message.tools" in text:
        # Phi-4-mini: the tools as a JSON string on the system message
        out.append(("system_tools", {"messages": [dict(SYSTEM, tools=json.dumps(TOOLS)),
                                                  {"role": "user", "content": "Weather in Paris?"}],
                                     "add_generation_prompt": True}))
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


# Small templates, one or two features each, rendered into features.json
# (tests/tok/test_jinja.c). Vars are shared: see FEATURE_VARS.
FEATURE_VARS = {
    "messages": [SYSTEM, U1, A1, U2],
    "xs": [3, 1, 2], "names": ["bob", "Alice", "carol", "alice"],
    "d": {"b": 2, "a": 1, "C": 3}, "s": "  Hello, World  ", "n": 7, "f": 2.5, "neg": -4,
    "items": [{"name": "x", "v": 1, "on": True}, {"name": "y", "v": 2, "on": False},
              {"name": "z", "v": 3, "on": True}],
    "t": True, "none": None, "empty": [], "u": "ünïcødé ✓",
}
FEATURES = [
    ("output", "{{ 'a' }}{{ 1 }}{{ 2.5 }}{{ none }}{{ t }}{{ xs }}{{ d }}{{ undefined_var }}|"),
    ("literals", "{{ [1, 'two', 3.0, true, False, None] }} {{ {'k': 'v', 2: [1]} }} {{ (1, 2)|list }} {{ 1e3 }} {{ 1_000 }}"),
    ("string_escapes", "{{ 'a\\tb\\nc\\'d\\\\e\\x41\\u00e9' }}|{{ \"dq'\" }}|{{ 'adj' 'acent' }}"),
    ("comments_ws", "a {# comment #} b\n  {# own line #}\nc {%- if t %} d {% endif -%} e\n{{- ' f ' -}}\n g"),
    ("trim_lstrip", "<ul>\n    {% for x in xs %}\n    <li>{{ x }}</li>\n    {% endfor %}\n</ul>\n  {%+ if t %}kept{% endif %}\n{% if t +%}\nnl{% endif %}"),
    ("raw", "{% raw %}{{ not evaluated }}{% endraw %}"),
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1 + 2 * 3 - 4 }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ n ~ '!' ~ f }} {{ -n }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 10 / 4 }}"),
    ("compare_logic", "{{ 1 < 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 == true }} {{ [1,2] == [1,2] }} {{ 2 in xs }} {{ 'ell' in s }} {{ 'a' in d }} {{ 9 not in xs }} {{ not t }} {{ none or 'x' }} {{ 0 and 1 }} {{ 'y' if t else 'n' }} {{ 'y' if none }}|"),
    ("if_elif", "{% for x in [0, 1, 2, 3] %}{% if x == 0 %}zero{% elif x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %} {% endfor %}"),
    ("loop_vars", "{% for x in names %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.previtem }}/{{ loop.nextitem }};{% endfor %}"),
    ("for_if_else", "{% for x in xs if x > 1 %}{{ x }}:{{ loop.length }} {% endfor %}|{% for x in empty %}never{% else %}else{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}|{% for c in 'héllo' %}{{ c }}.{% endfor %}|{% for k in d %}{{ k }}{% endfor %}"),
    ("loopcontrols", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
    ("scoping", "{% set a = 1 %}{% for x in xs %}{% set a = x %}{% endfor %}{{ a }} {% set ns = namespace(total=0, hit=false) %}{% for x in xs %}{% set ns.total = ns.total + x %}{% endfor %}{{ ns.total }} {{ ns.hit }}"),
    ("set_block", "{% set greeting %}Hi {{ names[0] }}!{% endset %}[{{ greeting }}]{% set shout | upper %}quiet{% endset %}{{ shout }}{% set a, b = [1, 2] %}{{ a }}{{ b }}"),
    ("macro_call", "{% macro tag(name, cls='x') %}<{{ name }} class={{ cls }}>{{ caller() if caller is defined else '' }}</{{ name }}>{% endmacro %}{{ tag('a') }}{{ tag('b', cls='y') }}{% call tag('div') %}inner {{ n }}{% endcall %}{% macro rec(k) %}{{ k }}{% if k > 0 %}{{ rec(k - 1) }}{% endif %}{% endmacro %}{{ rec(3) }}"),
    ("call_args", "{% macro m(a, b) %}{{ a }}-{{ b }}{{ caller(10, 20) if caller is defined }}{% endmacro %}{% call(x, y) m(1, 2) %}[{{ x }},{{ y }}]{% endcall %}{{ m(b=2, a=1) }}"),
    ("filter_block", "{% filter upper %}hello {{ names[0] }}{% endfilter %}|{% filter replace('l', 'L') | trim %}  hello  {% endfilter %}"),
    ("attr_item", "{{ messages[0].role }} {{ messages[0]['content'] }} {{ messages[-1].role }} {{ d.a }} {{ d['b'] }} {{ items[1].name }} {{ xs.0 }} {{ messages[99] is defined }} {{ d.zz is defined }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} {{ d.get('q', 'dflt') }} {{ d.get('q') }}"),
    ("slicing", "{{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ xs[::2] }} {{ 'abcdef'[1:4] }} {{ 'abcdef'[::-1] }} {{ u[::-1] }} {{ u[2:5] }} {{ xs[10:] }} {{ 'abc'[-1] }}"),
    ("str_methods", "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a-b-c'.rsplit('-', 1) }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}|{{ '{} and {}'.format(1, 'two') }}|{{ '-'.join(['a', 'b']) }}|{{ 'banana'.count('a') }}{{ 'banana'.find('n') }}|{{ 'l1\\nl2'.splitlines() }}|{{ '42'.isdigit() }}"),
    ("filters_str", "{{ s|trim }}|{{ s|upper }}|{{ s|lower }}|{{ 'hello wORLD-foo'|title }}|{{ 'hELLO'|capitalize }}|{{ 'aXbX'|replace('X', '_') }}|{{ '<a href=\"x\">&\\'</a>'|e }}|{{ '<b>'|escape }}|{{ 'x'|safe }}|{{ 'one two  three'|wordcount }}|{{ 42|string ~ 'x' }}|{{ 'line1\\nline2\\n\\nline3'|indent(2) }}|{{ 'a\\nb'|indent(4, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}"),
    ("filters_seq", "{{ xs|length }} {{ names|count }} {{ xs|first }} {{ xs|last }} {{ xs|sort }} {{ xs|sort(reverse=true) }} {{ names|sort }} {{ names|sort(case_sensitive=true) }} {{ names|unique|list }} {{ xs|reverse|list }} {{ 'abc'|reverse }} {{ xs|min }} {{ xs|max }} {{ names|max }} {{ xs|sum }} {{ items|sum(attribute='v') }} {{ xs|join(', ') }} {{ items|join('|', attribute='name') }} {{ xs|batch(2)|list }} {{ xs|batch(2, 0)|list }} {{ d|dictsort }} {{ d|dictsort(by='value', reverse=true) }} {{ d|items|list }} {{ 'abc'|list }} {{ items|sort(attribute='v', reverse=true)|map(attribute='name')|list }}"),
    ("filters_select", "{{ items|selectattr('on')|map(attribute='name')|list }} {{ items|rejectattr('on')|map(attribute='name')|list }} {{ items|selectattr('v', 'gt', 1)|map(attribute='name')|join }} {{ items|selectattr('name', 'equalto', 'y')|list|length }} {{ xs|select('odd')|list }} {{ xs|reject('odd')|list }} {{ names|map('upper')|list }} {{ items|map(attribute='missing', default='-')|list }} {{ none|selectattr('x')|list }} {{ messages|selectattr('role', 'eq', 'user')|list|length }}"),
    ("filters_num", "{{ neg|abs }} {{ f|abs }} {{ '42'|int + 1 }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.567|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ n|float }} {{ 5|round }}"),
    ("filters_default", "{{ missing|default('dflt') }} {{ missing|d('d2') }} {{ ''|default('e', true) }} {{ ''|default('e') }}| {{ none|default('n') }} {{ 0|default(5, boolean=true) }}"),
    ("tojson", "{{ d|tojson }} {{ items[0]|tojson }} {{ xs|tojson(indent=2) }} {{ d|tojson(sort_keys=true) }} {{ u|tojson }} {{ 'q\"\\\\\\n'|tojson }} {{ [none, t, f, 1e100]|tojson }} {{ {'a': {'b': [1, {}]}, 'e': []}|tojson(indent=4) }}"),
    ("tests", "{{ n is number }}{{ n is integer }}{{ f is float }}{{ s is string }}{{ d is mapping }}{{ xs is iterable }}{{ xs is sequence }}{{ t is boolean }}{{ t is true }}{{ t is false }}{{ none is none }}{{ missing is undefined }}{{ missing is not defined }}{{ n is odd }}{{ n is even }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ n is divisibleby 7 }}{{ n is eq 7 }}{{ n is ne 7 }}{{ 2 is in xs }}{{ range is callable }}{{ n is gt 3 }}{{ n is le 3 }}{{ d is sameas d }}{{ n is equalto(7) }}"),
    ("undefined", "[{{ missing }}]{{ missing|length }}{% for x in missing %}no{% endfor %}{{ missing is defined }}{{ d.nope }}{{ messages[0].nope }}{{ (missing or 'dflt') }}{{ missing ~ 'x' }}"),
    ("globals", "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ strftime_now('%Y-%m-%d %d %b %Y') }} {% set ns = namespace(a=1) %}{{ ns.a }} {{ dict(x=1, y='z') }}"),
    ("markup", "{{ 'a'|safe + '<b>' }} {{ '<b>' + '<i>'|safe }} {{ ('x'|safe + '&')|length }} {{ '<'|safe ~ '<' }}"),
    ("generation", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% endif %}{% endfor %}"),
    ("unicode", "{{ u|length }} {{ u|upper }} {{ u[0] }} {{ u|reverse }} {{ '\u00a0x\u3000'|trim }}|{{ 'straße'|title }}"),
    ("raise", "{% if messages|length > 2 %}{{ raise_exception('too many: ' ~ messages|length) }}{% endif %}ok"),
    ("error_iterate_none", "{% for x in none %}{% endfor %}"),
    ("error_call_undefined", "{{ missing() }}"),
    ("error_attr_of_undefined", "{{ missing.attr }}"),
    ("error_add_types", "{{ 1 + 'a' }}"),
    ("precedence", "{{ 2 * 3 ~ 4 }} {{ 'a' ~ 2 ** 2 }} {{ (1 + 2) ~ 'x' }}|"),
    ("error_cat_binds_tighter_than_add", "{{ 1 ~ 2 + 3 }}"),
    ("error_append", "{% set l = [] %}{{ l.append(1) }}"),
    # comparisons chain as in Python: a < b < c is a < b and b < c, b evaluated once
    ("chained_compare", "{{ 1 < 2 == true }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 1 }} {{ 1 < 3 < 2 }} {{ xs[0] > xs[1] < xs[2] }} {{ 1 == 1 == 1 }} {{ 1 < 2 != false }} {{ 2 in xs in [xs] }} {{ 0 < n <= 7 }} {{ not 1 < 2 < 3 }} {{ 1 < 2 < 3 and 'x' }}"),
    ("chained_compare_once", "{% set ns = namespace(c=0) %}{% macro m() %}{% set ns.c = ns.c + 1 %}2{% endmacro %}{{ 1 < m()|int < 3 }} {{ ns.c }} {{ 3 < 2 < m()|int }} {{ ns.c }} {{ 1 < 2 < m()|int < 4 }} {{ ns.c }}"),
    ("error_chained_compare_types", "{{ 1 < 2 < 'a' }}"),
    # the lexer's view of the source: one final newline dropped, \r\n and \r read as \n
    ("trailing_newline", "{% if t %}x{% endif %}\n\n"),
    ("trailing_newline_one", "a\n"),
    ("crlf", "a\r\nb {{ 'c\r\nd'|length }}\r\n{% if t %}\r\ny{% endif %}\r\nz\rw\r\n"),
    ("tojson_options", "{{ d|tojson(separators=(',', ':')) }} {{ xs|tojson(separators=(', ', ': '), indent=1) }} {{ u|tojson(ensure_ascii=true) }} {{ '\U0001F600'|tojson(true) }} {{ {'k': [1, 2]}|tojson(indent=2, separators=(',', ' = ')) }}"),
    ("loop_cycle", "{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}{% for x in names %}{{ loop.cycle(1, 2, 3) }}{% endfor %}"),
    ("loop_changed", "{% for x in [1, 1, 2, 2, 3, 1] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}|{% for m in messages %}{{ loop.changed(m.role) }} {% endfor %}"),
    ("percent_format", "{{ '%s and %d' % ('a', 3) }}|{{ '%05.2f' % 3.14159 }}|{{ '%s' % 'x' }}|{{ '%(a)s-%(b)r' % {'a': 1, 'b': 'q'} }}|{{ '%x %X %o %e %g %%' % (255, 255, 8, 12345.678, 0.00001) }}|{{ '%-5s|%5s|%.2s' % ('ab', 'cd', 'xyz') }}|{{ '%5d|%-4d|%+d|% d|%03d' % (42, 7, 5, 6, -4) }}|{{ '%s %s' % ([1, 2], none) }}|{{ '%i %d' % (3.7, true) }}|{{ '%r' % 'x' }}|{{ '%#o %#x' % (8, 255) }}|{{ '%c%c' % ('a', 'é') }}|{{ '%s' % d }}|{{ 'no args' % {} }}|{{ '%5s|' % 'ü' }}"),
    ("format_filter", "{{ '%s-%s'|format(1, 'b') }} {{ '%(x)s!'|format(x=2) }} {{ '%.1f'|format(2.25) }} {{ n|format }}"),
    ("error_percent_too_few", "{{ '%s %s' % ('a',) }}"),
    ("error_percent_too_many", "{{ '%s' % ('a', 'b') }}"),
    ("error_percent_int_of_float", "{{ '%x' % 2.5 }}"),
    ("str_methods_more", "{{ 'abc'.center(7, '*') }}|{{ 'abc'.center(6) }}|{{ 'ab'.center(5) }}|{{ 'ab'.ljust(4, '.') }}|{{ 'ab'.rjust(4) }}|{{ '7'.zfill(3) }}{{ '-7'.zfill(4) }}|{{ 'a=b=c'.partition('=') }}|{{ 'a=b=c'.rpartition('=') }}|{{ 'abc'.partition('x') }}|{{ 'abc'.rpartition('x') }}|{{ 'abcb'.rfind('b') }}{{ 'abc'.rfind('x') }}{{ 'abc'.index('c') }}|{{ 'prefix_x'.removeprefix('prefix_') }}{{ 'x.py'.removesuffix('.py') }}{{ 'x'.removeprefix('y') }}|{{ 'ünï'.center(5, '·') }}"),
    ("dict_copy", "{% set e = d.copy() %}{{ e }} {{ e is mapping }}"),
    ("namespace_repr", "{% set ns = namespace(items=[]) %}{% for x in xs %}{% set ns.items = ns.items + [x] %}{% endfor %}{{ ns.items }} {{ ns }} {{ [ns] }}"),
    ("round_exact", "{{ 2.675|round(2) }} {{ 0.5|round }} {{ 1.5|round }} {{ -2.5|round }} {{ 1234.5678|round(-2) }} {{ 7|round(1) }} {{ 0.125|round(2) }} {{ 1e300|round(2) }}"),
    ("split_maxsplit_blanks", "{{ ' a b '.split(None, 1) }} {{ ' a '.split(None, 1) }} {{ ' a b c '.split(None, 1) }} {{ ' a b '.rsplit(None, 1) }} {{ ' a '.rsplit(None, 1) }} {{ ' a b c '.rsplit(None, 1) }} {{ ' a b '.split(None, 0) }} {{ ' a b '.rsplit(None, 0) }} {{ 'a  b'.split(' ') }} {{ ''.split() }} {{ ''.split(',') }}"),
    ("filtered_loop_len", "{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}{{ loop.last }} {% endfor %}"),
    ("macro_in_loop", "{% for x in xs %}{% macro show(v) %}[{{ v }}{{ x }}]{% endmacro %}{{ show(x * 2) }}{% endfor %}"),
    ("map_tojson_string", "{{ items|map('tojson')|join(', ') }} {{ items|map('tojson', indent=1)|first }} {{ [{'type': 'text', 'text': 'hi'}]|string }} {{ {'a': [1, 'x', none, 2.0]}|string }}"),
    ("title_words", "{{ \"they're bill's friends\"|title }} {{ 'hello-world_foo bar2baz'|title }} {{ 'ÉCOLE élève'|title }} {{ \"o'neil\".title() }}"),
    ("strftime_formats", "{{ strftime_now('%d %B %Y') }}|{{ strftime_now('%A %H:%M:%S %j %p %y %a %b %m %I %e %%') }}|{{ strftime_now('%b %d, %Y') }}"),
    ("in_mapping", "{{ 'a' in d }} {{ 'z' in d }} {{ 'a' not in d }} {{ 1 in d.values() }} {{ 'b' in d.keys() }} {{ 'role' in messages[0] }} {{ 'tool_calls' in messages[0] }} {{ 'x' in none|default({}, true) }}"),
    ("int_edges", "{{ 2 ** 62 }} {{ 9223372036854775807 }} {{ -9223372036854775807 - 1 }} {{ (-2) ** 63 }}"),
]


def render_features(d, env):
    out = []
    for name, text in FEATURES:
        case = {"name": name, "template": text}
        try:
            case["output"] = env.from_string(text).render(**json.loads(json.dumps(FEATURE_VARS)))
        except jinja2.exceptions.TemplateError as e:
            case["error"] = str(e)
        except Exception as e:
            case["error"] = "%s: %s" % (type(e).__name__, e)
        out.append(case)
    with open(os.path.join(d, "features.json"), "w", encoding="utf-8") as f:
        json.dump({"vars": FEATURE_VARS, "cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for c in out:
        print("feature %-25s %s" % (c["name"], ("ERROR " + c["error"]) if "error" in c else "ok"))


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
            v = {"messages": kw["messages"], "tools": kw.get("tools"), "documents": kw.get("documents"),
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
    render_features(d, env)


if __name__ == "__main__":
    main()
