// The official OpenAI Node client against `aloe serve` (started by
// tests/serve/test_serve_node.c, which passes where it listens):
//   ALOE_BASE_URL=http://127.0.0.1:PORT/v1 ALOE_KEY=... ALOE_MODEL=tq ALOE_EMBED_MODEL=bert node openai.mjs
// Chat (whole and streamed), completions, embeddings (the client's default
// base64 and float), the model list and the error classes the client maps
// statuses to. Prints "ok NAME" per check; exits 1 after any failure.
import OpenAI from 'openai';

const baseURL = process.env.ALOE_BASE_URL;
const apiKey = process.env.ALOE_KEY;
const model = process.env.ALOE_MODEL;
const embedModel = process.env.ALOE_EMBED_MODEL;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello, who are you?' }];

let failed = 0;
function check(cond, name, detail) {
  if (cond) {
    console.log(`ok ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
  }
}

async function expectError(name, cls, status, fn, param) {
  try {
    await fn();
    check(false, name, 'no error');
  } catch (e) {
    check(e instanceof cls && e.status === status && (param === undefined || e.param === param), name,
          { status: e.status, param: e.param, message: e.message });
  }
}

const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
check(ids.includes(model) && ids.includes(embedModel), 'models.list', ids);

const chat = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
const reply = chat.choices[0].message.content;
check(typeof reply === 'string' && chat.choices[0].message.role === 'assistant', 'chat', chat);
check(['stop', 'length'].includes(chat.choices[0].finish_reason), 'chat finish_reason', chat.choices[0]);
check(chat.usage.completion_tokens > 0 && chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens,
      'chat usage', chat.usage);

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let text = '', usage = null, finish = null;
for await (const chunk of stream) {
  if (chunk.choices.length) {
    text += chunk.choices[0].delta.content ?? '';
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  if (chunk.usage) usage = chunk.usage;
}
check(text === reply, 'chat stream text equals the whole reply', { text, reply });
check(finish === chat.choices[0].finish_reason, 'chat stream finish_reason', finish);
check(usage && usage.completion_tokens === chat.usage.completion_tokens, 'chat stream usage', usage);

const lp = await client.chat.completions.create({ model, messages, max_tokens: 4, temperature: 0, logprobs: true,
                                                   top_logprobs: 2, seed: 1, n: 2 });
check(lp.choices.length === 2 && lp.choices[0].logprobs.content[0].top_logprobs.length === 2, 'chat n and logprobs',
      lp.choices[0].logprobs);

const comp = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, echo: true });
check(comp.choices[0].text.startsWith('Once upon a time'), 'completions with echo', comp.choices[0]);
const compIds = await client.completions.create({ model, prompt: [1025, 82, 287], max_tokens: 4, temperature: 0 });
check(typeof compIds.choices[0].text === 'string' && compIds.usage.prompt_tokens === 3, 'completions from token ids',
      compIds.usage);

// The client asks for base64 by default and decodes it to floats itself.
const emb = await client.embeddings.create({ model: embedModel, input: ['She is a nurse.', 'He runs marathons.'] });
check(emb.data.length === 2 && emb.data[1].index === 1 && emb.data[0].embedding.length > 0, 'embeddings (base64)',
      emb.data.length);
// the same batch: a text embedded beside others may differ in the last bit from one embedded alone
const embf = await client.embeddings.create({ model: embedModel, input: ['She is a nurse.', 'He runs marathons.'],
                                             encoding_format: 'float' });
const a = embf.data[0].embedding, b = emb.data[0].embedding;
check(a.length === b.length && a.every((x, i) => x === b[i]), 'embeddings float equal base64', { a: a.slice(0, 3), b: b.slice(0, 3) });

await expectError('404 unknown model', OpenAI.NotFoundError, 404,
                  () => client.chat.completions.create({ model: 'no-such-model', messages }));
await expectError('400 names the field', OpenAI.BadRequestError, 400,
                  () => client.chat.completions.create({ model, messages, temperature: 9 }), 'temperature');
await expectError('400 embeddings of a chat model', OpenAI.BadRequestError, 400,
                  () => client.embeddings.create({ model, input: 'x' }));
const stranger = new OpenAI({ baseURL, apiKey: 'sk-wrong-key-000', maxRetries: 0 });
await expectError('401 wrong key', OpenAI.AuthenticationError, 401, () => stranger.models.list());

if (failed) {
  console.log(`${failed} failed`);
  process.exit(1);
}
console.log('all passed');
