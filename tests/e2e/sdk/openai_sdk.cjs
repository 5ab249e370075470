// The gateway through OpenAI's official Node SDK, changing only the base
// URL and key (what application teams do). Run by tests/e2e/test_sdk.py
// with NODE_PATH pointing at a node_modules that holds `openai`; prints one
// JSON object with what the SDK saw. The Python side checks what the mock
// upstreams received.
'use strict';
const OpenAI = require('openai');

const client = new OpenAI({
  baseURL: process.env.SOVGATE_BASE_URL,
  apiKey: process.env.SOVGATE_KEY,
  maxRetries: 0,
  timeout: 15000,
});
const model = 'mistral-large-latest';

async function main() {
  const out = {};

  // non-stream, with the raw response for the decision headers
  {
    const { data, response } = await client.chat.completions
      .create({ model, messages: [{ role: 'user', content: 'What is the capital of France?' }] })
      .withResponse();
    out.chat = {
      content: data.choices[0].message.content,
      model: data.model,
      usage: data.usage,
      backend: response.headers.get('x-sovgate-backend'),
      level: response.headers.get('x-sovgate-level'),
      decision: response.headers.get('x-sovgate-decision'),
    };
  }

  // stream, with include_usage as SDK users write it
  {
    const stream = await client.chat.completions.create({
      model, stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Refund IBAN FR76 3000 6000 0112 3456 7890 189' }],
    });
    let text = '';
    let chunks = 0;
    let usage = null;
    for await (const chunk of stream) {
      chunks++;
      for (const c of chunk.choices || []) text += (c.delta && c.delta.content) || '';
      if (chunk.usage) usage = chunk.usage;
    }
    out.stream = { text, chunks, usage };
  }

  // embeddings
  {
    const e = await client.embeddings.create({ model: 'mistral-embed', input: ['hello', 'world'] });
    out.embeddings = { n: e.data.length, dim: e.data[0].embedding.length };
  }

  // a policy denial surfaces as an APIError with the gateway's error body
  try {
    await client.chat.completions.create({
      model, messages: [{ role: 'user', content: 'export KEY=AKIAIOSFODNN7EXAMPLE' }],
    });
    out.deny = { thrown: false };
  } catch (err) {
    out.deny = {
      thrown: true, status: err.status, name: err.constructor.name,
      type: err.error && err.error.type, code: err.code || (err.error && err.error.code),
      decision_id: err.error && err.error.decision_id,
    };
  }

  // a wrong key
  try {
    const bad = new OpenAI({ baseURL: process.env.SOVGATE_BASE_URL, apiKey: 'wrong', maxRetries: 0 });
    await bad.models.list();
    out.badkey = { thrown: false };
  } catch (err) {
    out.badkey = { thrown: true, status: err.status, name: err.constructor.name };
  }

  // the model list
  {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    out.models = ids;
  }

  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ fatal: String(err && err.stack || err) }) + '\n');
  process.exit(1);
});
