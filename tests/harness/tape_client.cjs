#!/usr/bin/env node
// One fixed session of the official TypeScript SDK client, printed as one JSON line
// (`RESULT {...}`) that tests/harness/tape_replay.sh compares between a run through the
// recording proxy and a run against `shadowcat replay` of its tape: tools (list, echo, a
// progress-reporting tool with its notifications in order), resources (list, read),
// prompts (list, get), a notification on the standalone GET stream, DELETE.
// Usage: NODE_PATH=<harness>/node_modules node tests/harness/tape_client.cjs <mcp-url>
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { ResourceUpdatedNotificationSchema } = require("@modelcontextprotocol/sdk/types.js");

const url = process.argv[2];
const watchdog = setTimeout(() => {
  console.error("FAIL: timed out after 60 s");
  process.exit(1);
}, 60_000);

async function main() {
  const out = {};
  const client = new Client({ name: "tape-client", version: "1.0.0" }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  transport.onerror = (e) => console.error(`transport error: ${e.message}`);
  // Set before anything else, so an update that comes early is not lost.
  const uri = "demo://resource/dynamic/text/1";
  const updates = [];
  let updated;
  const gotUpdate = new Promise((resolve) => (updated = resolve));
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updates.push(n.params.uri);
    if (n.params.uri === uri) updated();
  });
  await client.connect(transport);
  out.session = Boolean(transport.sessionId);
  out.server = client.getServerVersion();
  const { tools } = await client.listTools();
  out.tools = tools.map((t) => t.name).sort();
  out.echo = await client.callTool({ name: "echo", arguments: { message: "recorded at the edge" } });
  const progress = [];
  out.long = await client.callTool(
    { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 4 } },
    undefined,
    { onprogress: (p) => progress.push([p.progress, p.total]) },
  );
  out.progress = progress;
  const resources = await client.listResources();
  out.resources = resources.resources.map((r) => r.uri);
  out.read = await client.readResource({ uri: resources.resources[0].uri });
  const prompts = await client.listPrompts();
  out.prompts = prompts.prompts.map((p) => p.name).sort();
  const simple = prompts.prompts.find((p) => !(p.arguments || []).some((a) => a.required));
  out.prompt = await client.getPrompt({ name: simple.name, arguments: {} });
  await client.subscribeResource({ uri });
  await client.callTool({ name: "toggle-subscriber-updates", arguments: {} });
  out.getStream = await Promise.race([gotUpdate.then(() => "resources/updated"), new Promise((r) => setTimeout(() => r("none"), 15_000))]);
  await client.callTool({ name: "toggle-subscriber-updates", arguments: {} });
  await transport.terminateSession();
  out.deleted = transport.sessionId === undefined;
  await client.close();
  return out;
}

main().then(
  (out) => {
    clearTimeout(watchdog);
    console.log(`RESULT ${JSON.stringify(out)}`);
    process.exit(0);
  },
  (e) => {
    console.error(`FAIL: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
