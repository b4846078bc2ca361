#!/usr/bin/env node
// A plain TypeScript SDK client for the conformance suite's client scenarios: connects to the
// URL it is given, lists the tools and calls each one (with no arguments), then closes.
// Run by tests/harness/conformance_client.sh, which puts Shadowcat between it and the suite.
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

async function main() {
  const url = process.argv[2];
  const client = new Client({ name: "shadowcat-conformance-client", version: "1.0.0" }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  const { tools } = await client.listTools();
  for (const tool of tools) {
    const result = await client.callTool({ name: tool.name, arguments: {} });
    console.log(`called ${tool.name}: ${JSON.stringify(result.content)}`);
  }
  await client.close();
}

const watchdog = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 25_000);
main()
  .then(() => clearTimeout(watchdog))
  .catch((e) => {
    console.error(e && e.stack ? e.stack : String(e));
    process.exit(1);
  });
