#!/usr/bin/env node
// The official TypeScript SDK client runs the same calls against a real stdio MCP server twice:
// directly (StdioClientTransport, the SDK starts the server) and through Shadowcat (the proxy
// runs the same server as a stdio upstream; StreamableHTTPClientTransport). The results must
// be equal, call by call. The server's state is reset before each run (a fresh memory file, a
// fresh folder), so both runs start alike.
//
// Usage: NODE_PATH=$MCP_HARNESS/node_modules node stdio_compare.cjs memory <proxy-url> <memory-file>
//        NODE_PATH=$MCP_HARNESS/node_modules node stdio_compare.cjs filesystem <proxy-url> <folder>
// (the proxy's upstream must be the same server with the same memory file or folder).

const fs = require("fs");
const path = require("path");
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

const [kind, url, place] = process.argv.slice(2);
if (!kind || !url || !place) {
  console.error("usage: stdio_compare.cjs memory|filesystem <proxy-url> <memory-file|folder>");
  process.exit(2);
}
const watchdog = setTimeout(() => fail("timed out after 60 s"), 60_000);
function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

const serverJs = (name) =>
  require.resolve(`@modelcontextprotocol/server-${name}/dist/index.js`);

const SERVERS = {
  memory: {
    command: [serverJs("memory")],
    env: { MEMORY_FILE_PATH: place },
    reset: () => fs.rmSync(place, { force: true }),
    calls: [
      ["create_entities", { entities: [
        { name: "Ada", entityType: "person", observations: ["wrote the first program"] },
        { name: "Engine", entityType: "machine", observations: ["analytical"] },
      ] }],
      ["create_relations", { relations: [{ from: "Ada", to: "Engine", relationType: "programmed" }] }],
      ["add_observations", { observations: [{ entityName: "Ada", contents: ["born 1815"] }] }],
      ["read_graph", {}],
      ["search_nodes", { query: "Ada" }],
      ["open_nodes", { names: ["Engine"] }],
      ["delete_relations", { relations: [{ from: "Ada", to: "Engine", relationType: "programmed" }] }],
      ["read_graph", {}],
      ["no_such_tool", {}],
    ],
    // The runs did real work (equal failures would be equal too).
    sane: (out) => text(out[4]).includes("wrote the first program") && text(out[4]).includes("programmed"),
  },
  filesystem: {
    command: [serverJs("filesystem"), place],
    env: {},
    reset: () => {
      fs.rmSync(place, { recursive: true, force: true });
      fs.mkdirSync(path.join(place, "sub"), { recursive: true });
      fs.writeFileSync(path.join(place, "a.txt"), "alpha\nbeta\n");
      fs.writeFileSync(path.join(place, "sub", "b.md"), "# b\n");
    },
    calls: [
      ["list_allowed_directories", {}],
      ["list_directory", { path: place }],
      ["read_text_file", { path: path.join(place, "a.txt") }],
      ["write_file", { path: path.join(place, "c.txt"), content: "gamma" }],
      ["read_multiple_files", { paths: [path.join(place, "c.txt"), path.join(place, "sub", "b.md")] }],
      ["edit_file", { path: path.join(place, "a.txt"), edits: [{ oldText: "beta", newText: "BETA" }] }],
      ["search_files", { path: place, pattern: "*.md" }],
      ["directory_tree", { path: place }],
      ["read_text_file", { path: "/etc/passwd" }],
    ],
    sane: (out) => text(out[3]) === "alpha\nbeta\n" && text(out[5]).includes("gamma")
      && out[9].isError === true,
  },
};

const text = (result) => (result.content || []).map((c) => c.text || "").join("\n");

async function run(server, transport) {
  server.reset();
  const client = new Client({ name: "stdio-compare", version: "1.0.0" });
  await client.connect(transport);
  const out = [{ tools: (await client.listTools()).tools.map((t) => t.name).sort() }];
  for (const [name, args] of server.calls) {
    try {
      out.push(await client.callTool({ name, arguments: args }));
    } catch (e) {
      out.push({ thrown: e.code ?? null, message: String(e.message) });
    }
  }
  await client.close();
  return out;
}

(async () => {
  const server = SERVERS[kind];
  if (!server) fail(`unknown server ${kind}`);
  const direct = await run(server, new StdioClientTransport({
    command: process.execPath,
    args: server.command,
    env: { PATH: process.env.PATH, ...server.env },
    stderr: "ignore",
  }));
  const proxied = await run(server, new StreamableHTTPClientTransport(new URL(url)));
  let failed = 0;
  direct.forEach((want, i) => {
    const label = i === 0 ? "tools/list" : `tools/call ${server.calls[i - 1][0]}`;
    const [a, b] = [JSON.stringify(want), JSON.stringify(proxied[i])];
    if (a === b) {
      console.log(`ok - ${kind}: ${label} equal through the proxy`);
    } else {
      failed += 1;
      console.log(`FAIL - ${kind}: ${label} differs\n  direct: ${a.slice(0, 400)}\n  proxied: ${b.slice(0, 400)}`);
    }
  });
  if (direct.length !== proxied.length) fail("different numbers of results");
  if (!server.sane(direct)) fail(`the direct run did not do the work: ${JSON.stringify(direct).slice(0, 600)}`);
  clearTimeout(watchdog);
  if (failed) fail(`${failed} result(s) differ`);
  console.log(`PASS stdio-compare ${kind} (TypeScript SDK)`);
})().catch((e) => fail(e.stack || String(e)));
