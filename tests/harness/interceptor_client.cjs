#!/usr/bin/env node
// The official TypeScript SDK client against server-everything behind Shadowcat with
// tests/harness/rules.yaml: the blocked tool gets a JSON-RPC error, the hidden tool is absent
// from tools/list and refused when called, the mocked tool answers from the proxy, and every
// other call behaves as it does directly.
// Usage: NODE_PATH=<harness>/node_modules node tests/harness/interceptor_client.cjs <mcp-url>

const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

const url = process.argv[2];
const watchdog = setTimeout(() => fail("timed out after 45 s"), 45_000);
function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}
function check(cond, msg) {
  if (!cond) fail(msg);
  console.log(`ok - ${msg}`);
}
const textOf = (res) => (res.content || []).filter((c) => c.type === "text").map((c) => c.text).join("\n");

async function refused(name, args) {
  try {
    await client.callTool({ name, arguments: args });
    return null;
  } catch (e) {
    return e;
  }
}

let client;
async function main() {
  client = new Client({ name: "shadowcat-interceptor-harness", version: "1.0.0" }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  check(names.includes("echo") && names.includes("get-sum"), "tools/list still lists the other tools");
  check(!names.includes("get-env"), "hide_tools removed get-env from tools/list");

  const sum = await refused("get-sum", { a: 2, b: 3 });
  check(sum && sum.code === -32001, `blocked tools/call get-sum -> JSON-RPC error ${sum && sum.code}`);
  check(String(sum && sum.message).includes("disabled by policy"), "the block carries the rule's message");

  const env = await refused("get-env", {});
  check(env && env.code === -32602, `a call to the hidden tool is refused (${env && env.code})`);

  const image = await client.callTool({ name: "get-tiny-image", arguments: {} });
  check(textOf(image) === "mocked by shadowcat", "get-tiny-image answered by the mock");

  const echo = await client.callTool({ name: "echo", arguments: { message: "through the rules" } });
  check(textOf(echo).includes("through the rules"), "tools/call echo round-trips");

  const progress = [];
  const long = await client.callTool(
    { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 3 } },
    undefined,
    { onprogress: (p) => progress.push(p) },
  );
  check(textOf(long).length > 0 && progress.length >= 2, `SSE tool call with ${progress.length} progress events`);

  await transport.terminateSession();
  await client.close();
  clearTimeout(watchdog);
  console.log("interceptor harness: all passed");
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
