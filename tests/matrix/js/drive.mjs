// Run one JavaScript producer's cases against the fake providers, exporting OTLP/HTTP
// (protobuf) to a MentatLab server. Same arguments and one-line JSON report as
// tests/matrix/drivers/drive.py:
//   node drive.mjs PRODUCER --openai URL --anthropic URL --bedrock URL --otlp URL
// Producers: vercel-ai (AI SDK v7 + @ai-sdk/otel), vercel-ai-v6 (AI SDK v6,
// experimental_telemetry), traceloop-js (@traceloop/node-server-sdk, OpenLLMetry-JS).
// Every case runs under a top-level span that alone names the agent (gen_ai.agent.name).
// the Anthropic SDK traces itself by default: one span per call is ours to count
process.env.ANTHROPIC_OPEN_TELEMETRY ??= "false";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { trace, context } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { z } from "zod";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { openai: { type: "string" }, anthropic: { type: "string" },
             bedrock: { type: "string" }, otlp: { type: "string" } },
});
const producer = positionals[0];
const endpoints = values;
const OPENAI_MODEL = "gpt-4o";
const REASONING_MODEL = "o4-mini";
const ANTHROPIC_MODEL = "claude-sonnet-4-20250514";
const BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const SYSTEM_CACHED = "You are a geography tutor. ".repeat(200);
const results = [];

function tagFor(caseId, mode) {
  const flags = [];
  if (mode.includes("cache-read")) flags.push("[cache:read]");
  else if (mode.includes("cache-write")) flags.push("[cache:write]");
  else if (mode.endsWith("-cache")) flags.push("[cache:read+write]");
  return [`[case:${caseId}]`, ...flags].join(" ");
}
const ask = (tag) => `What is the capital of France? ${tag}`;

function exporter() {
  return new OTLPTraceExporter({ url: `${endpoints.otlp}/v1/traces`, timeoutMillis: 30000 });
}

async function runCases(modes, provider) {
  const tracer = trace.getTracer("mentatlab.matrix");
  for (const [mode, [providerName, fn]] of Object.entries(modes)) {
    const caseId = `${producer}.${mode}`;
    const tag = tagFor(caseId, mode);
    let error = null;
    let traceId = null;
    await tracer.startActiveSpan(`invoke_agent ${caseId}`, {
      attributes: { "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": caseId },
    }, async (span) => {
      traceId = span.spanContext().traceId;
      try {
        await fn(tag);
      } catch (exc) {
        error = `${exc?.name}: ${exc?.message}`.slice(0, 500);
        if (process.env.MATRIX_DEBUG) console.error(exc);
      } finally {
        span.end();
      }
    });
    results.push({ id: caseId, mode, provider: providerName, agent: caseId, error,
                   trace_ids: [traceId] });
  }
  await provider.forceFlush();
  await provider.shutdown();
}

function version(name) {
  // read the installed package.json directly: some packages' "exports" hide it from require
  const path = new URL(`./node_modules/${name}/package.json`, import.meta.url);
  try { return JSON.parse(readFileSync(path, "utf8")).version; } catch { return null; }
}

function nodeProvider() {
  const provider = new NodeTracerProvider({
    spanProcessors: [new BatchSpanProcessor(exporter(), { scheduledDelayMillis: 200 })],
  });
  provider.register();
  return provider;
}

async function vercelModes(ai, createOpenAI, createAnthropic, createBedrock, telemetryOption) {
  const openai = createOpenAI({ baseURL: endpoints.openai, apiKey: "sk-fake" });
  const bedrock = createBedrock({ baseURL: endpoints.bedrock, region: "us-east-1",
                                  accessKeyId: "fake", secretAccessKey: "fake" });
  const anthropic = createAnthropic({ baseURL: `${endpoints.anthropic}/v1`, apiKey: "sk-ant-fake" });
  const weather = ai.tool({
    description: "Current weather in a city",
    inputSchema: z.object({ city: z.string() }),
    execute: async () => "sunny, 21 C",
  });
  const stop = ai.isStepCount ? ai.isStepCount(2) : ai.stepCountIs(2);
  const drain = async (result) => { for await (const _ of result.textStream) { /* drain */ } };
  const gen = (opts) => ai.generateText({ maxRetries: 2, ...telemetryOption, ...opts });
  const str = (opts) => drain(ai.streamText({ maxRetries: 2, ...telemetryOption, ...opts }));
  // a cache breakpoint on the (long) first user message: both v6 and v7 accept it there
  const cachedPrompt = (t) => [
    { role: "user", content: SYSTEM_CACHED,
      providerOptions: { anthropic: { cacheControl: { type: "ephemeral" } } } },
    { role: "user", content: ask(t) }];
  return {
    "ai-chat": ["openai", (t) => gen({ model: openai.chat(OPENAI_MODEL), prompt: ask(t) })],
    "ai-chat-stream": ["openai", (t) => str({ model: openai.chat(OPENAI_MODEL), prompt: ask(t) })],
    "ai-chat-cache-read": ["openai", (t) => gen({ model: openai.chat(OPENAI_MODEL), prompt: ask(t) })],
    "ai-chat-reasoning": ["openai", (t) => gen({ model: openai.chat(REASONING_MODEL), prompt: ask(t) })],
    "ai-responses-reasoning-cache-read": ["openai", (t) => gen({
      model: openai.responses(REASONING_MODEL), prompt: ask(t) })],
    "ai-responses-stream": ["openai", (t) => str({ model: openai.responses(OPENAI_MODEL), prompt: ask(t) })],
    "ai-chat-tool-call": ["openai", (t) => gen({
      model: openai.chat(OPENAI_MODEL), prompt: `Weather in Paris? ${t}`,
      tools: { get_weather: weather }, stopWhen: stop })],
    "ai-messages": ["anthropic", (t) => gen({ model: anthropic(ANTHROPIC_MODEL), prompt: ask(t) })],
    "ai-messages-stream-cache": ["anthropic", (t) => str({
      model: anthropic(ANTHROPIC_MODEL),
      messages: cachedPrompt(t) })],
    "ai-messages-cache-write": ["anthropic", (t) => gen({
      model: anthropic(ANTHROPIC_MODEL),
      messages: cachedPrompt(t) })],
    "ai-messages-tool-call": ["anthropic", (t) => gen({
      model: anthropic(ANTHROPIC_MODEL), prompt: `Weather in Paris? ${t}`,
      tools: { get_weather: weather }, stopWhen: stop })],
    "ai-converse": ["aws.bedrock", (t) => gen({ model: bedrock(BEDROCK_MODEL), prompt: ask(t) })],
    "ai-converse-stream-cache": ["aws.bedrock", (t) => str({
      model: bedrock(BEDROCK_MODEL), prompt: ask(t) })],
    "ai-converse-cache": ["aws.bedrock", (t) => gen({
      model: bedrock(BEDROCK_MODEL), prompt: ask(t) })],
  };
}

async function vercelAi() {
  const ai = await import("ai");
  const { OpenTelemetry } = await import("@ai-sdk/otel");
  const { createOpenAI } = await import("@ai-sdk/openai");
  const { createAnthropic } = await import("@ai-sdk/anthropic");
  const { createAmazonBedrock } = await import("@ai-sdk/amazon-bedrock");
  const provider = nodeProvider();
  // v7: telemetry is an integration registered once (ai-sdk.dev/v7/docs/ai-sdk-core/telemetry)
  ai.registerTelemetry(new OpenTelemetry());
  const modes = await vercelModes(ai, createOpenAI, createAnthropic, createAmazonBedrock, {});
  await runCases(modes, provider);
  return { ai: version("ai"), "@ai-sdk/otel": version("@ai-sdk/otel"),
           "@ai-sdk/openai": version("@ai-sdk/openai"),
           "@ai-sdk/anthropic": version("@ai-sdk/anthropic"),
           "@ai-sdk/amazon-bedrock": version("@ai-sdk/amazon-bedrock") };
}

async function vercelAiV6() {
  const ai = await import("ai-v6");
  const { createOpenAI } = await import("ai-sdk-openai-v3");
  const { createAnthropic } = await import("ai-sdk-anthropic-v3");
  const { createAmazonBedrock } = await import("ai-sdk-amazon-bedrock-v4");
  const provider = nodeProvider();
  const modes = await vercelModes(ai, createOpenAI, createAnthropic, createAmazonBedrock,
                                  { experimental_telemetry: { isEnabled: true } });
  await runCases(modes, provider);
  return { ai: version("ai-v6"), "@ai-sdk/openai": version("ai-sdk-openai-v3"),
           "@ai-sdk/anthropic": version("ai-sdk-anthropic-v3"),
           "@ai-sdk/amazon-bedrock": version("ai-sdk-amazon-bedrock-v4") };
}

async function traceloopJs() {
  const traceloop = await import("@traceloop/node-server-sdk");
  const OpenAI = (await import("openai")).default;
  // OpenLLMetry-JS patches module.Anthropic.* for anthropic: it takes the module namespace
  const anthropicModule = await import("@anthropic-ai/sdk");
  const Anthropic = anthropicModule.default;
  traceloop.initialize({
    appName: "matrix-traceloop-js", disableBatch: true, exporter: exporter(),
    silenceInitializationMessage: true, traceloopSyncEnabled: false,
    instrumentModules: { openAI: OpenAI, anthropic: anthropicModule },
  });
  const openai = new OpenAI({ baseURL: endpoints.openai, apiKey: "sk-fake", maxRetries: 2 });
  const anthropic = new Anthropic({ baseURL: endpoints.anthropic, apiKey: "sk-ant-fake",
                                    maxRetries: 2 });
  const chat = (t, extra = {}) => openai.chat.completions.create({
    model: OPENAI_MODEL, messages: [{ role: "user", content: ask(t) }], ...extra });
  const drain = async (stream) => { for await (const _ of stream) { /* drain */ } };
  const message = (t, extra = {}) => anthropic.messages.create({
    model: ANTHROPIC_MODEL, max_tokens: 256, messages: [{ role: "user", content: ask(t) }],
    ...extra });
  const system = [{ type: "text", text: SYSTEM_CACHED, cache_control: { type: "ephemeral" } }];
  const tools = [{ type: "function", function: { name: "get_weather", description: "Weather",
    parameters: { type: "object", properties: { city: { type: "string" } } } } }];
  const modes = {
    "chat": ["openai", (t) => chat(t)],
    "chat-stream": ["openai", async (t) => drain(await chat(t, {
      stream: true, stream_options: { include_usage: true } }))],
    "chat-cache-read": ["openai", (t) => chat(t)],
    "chat-reasoning": ["openai", (t) => chat(t, { model: REASONING_MODEL })],
    "chat-tool-call": ["openai", async (t) => {
      const messages = [{ role: "user", content: `Weather in Paris? ${t}` }];
      const first = await openai.chat.completions.create({ model: OPENAI_MODEL, messages, tools });
      const call = first.choices[0].message.tool_calls[0];
      messages.push(first.choices[0].message,
                    { role: "tool", tool_call_id: call.id, content: "sunny, 21 C" });
      await openai.chat.completions.create({ model: OPENAI_MODEL, messages, tools });
    }],
    "messages": ["anthropic", (t) => message(t)],
    "messages-stream-cache": ["anthropic", async (t) => drain(await message(t, {
      system, stream: true }))],
    "messages-cache-write": ["anthropic", (t) => message(t, { system })],
  };
  await runCases(modes, { forceFlush: () => traceloop.forceFlush(), shutdown: async () => {} });
  return { "@traceloop/node-server-sdk": version("@traceloop/node-server-sdk"),
           "@traceloop/instrumentation-openai": version("@traceloop/instrumentation-openai"),
           "@traceloop/instrumentation-anthropic": version("@traceloop/instrumentation-anthropic"),
           openai: version("openai"), "@anthropic-ai/sdk": version("@anthropic-ai/sdk") };
}

const PRODUCERS = { "vercel-ai": vercelAi, "vercel-ai-v6": vercelAiV6, "traceloop-js": traceloopJs };
const versions = await PRODUCERS[producer]();
versions.node = process.version;
console.log(JSON.stringify({ producer, versions, cases: results }));
