// The official OpenAI Node SDK against Tollgate, unchanged. Driven by tests/e2e/test_node_sdk.py:
//   BASE_URL=http://127.0.0.1:PORT/v1 API_KEY=tg-... MODEL=... [EMBED_MODEL=...] node tests/node/chat.mjs [--no-stream] [--no-models]
// Prints one JSON line with what it got; exits non-zero on any error.
import OpenAI from "openai";
import { VERSION } from "openai/version";

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function main() {
  const args = new Set(process.argv.slice(2));
  const model = required("MODEL");
  const client = new OpenAI({ baseURL: required("BASE_URL"), apiKey: required("API_KEY"), maxRetries: 0, timeout: 30_000 });
  const messages = [{ role: "user", content: "Hello" }];
  const result = { sdk_version: VERSION, model };

  // (a) non-streaming
  const { data: completion, response } = await client.chat.completions
    .create({ model, messages, max_tokens: 16, temperature: 0 })
    .withResponse();
  result.request_id = response.headers.get("x-request-id");
  result.id = completion.id;
  result.object = completion.object;
  result.response_model = completion.model;
  result.content = completion.choices[0]?.message?.content ?? null;
  result.role = completion.choices[0]?.message?.role ?? null;
  result.finish_reason = completion.choices[0]?.finish_reason ?? null;
  result.usage = completion.usage ?? null;

  // (b) streaming, with the usage chunk at the end
  if (!args.has("--no-stream")) {
    const { data: stream, response: streamResponse } = await client.chat.completions
      .create({ model, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    result.stream_request_id = streamResponse.headers.get("x-request-id");
    let text = "";
    let finish = null;
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      const choice = chunk.choices?.[0];
      if (choice) {
        text += choice.delta?.content ?? "";
        finish = choice.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    result.stream_text = text;
    result.stream_finish_reason = finish;
    result.stream_usage = usage;
    result.stream_chunks = chunks;
  }

  // (c) the model list (auto-paginating iterator)
  if (!args.has("--no-models")) {
    const ids = [];
    for await (const entry of client.models.list()) ids.push(entry.id);
    result.model_ids = ids;
  }

  // (d) embeddings of two texts, when an embedding model is given (the SDK asks for base64 and decodes it)
  const embedModel = process.env.EMBED_MODEL;
  if (embedModel) {
    const embeddings = await client.embeddings.create({ model: embedModel, input: ["first", "second"] });
    result.embedding_model = embeddings.model;
    result.embeddings = embeddings.data.map((item) => ({ index: item.index, embedding: item.embedding }));
    result.embedding_usage = embeddings.usage;
  }

  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  const detail = error instanceof OpenAI.APIError
    ? { name: error.name, status: error.status ?? null, message: error.message, request_id: error.requestID ?? null }
    : { name: error?.name ?? "Error", message: String(error?.message ?? error) };
  process.stderr.write(`chat.mjs failed: ${JSON.stringify(detail)}\n`);
  if (error?.stack) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
