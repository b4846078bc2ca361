// Shared bits of the k6 scenarios. TARGET is the MCP endpoint URL (direct, shadowcat or nginx).
export const TARGET = __ENV.TARGET || 'http://127.0.0.1:8080/mcp';
export const DURATION = __ENV.DURATION || '10s';
export const summaryTrendStats = ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'];

export function headers(extra) {
  return Object.assign(
    {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
    },
    extra || {},
  );
}

export function call(id, extra) {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hi' } }, ...extra });
}

// Each VU initializes once and calls within its session, as stateful MCP clients do (an
// upstream that issues sessions requires them, and the proxy enforces that).
let session = null;

export function sessionHeaders(http, extra) {
  if (!session) {
    const init = http.post(TARGET, JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} }), { headers: headers() });
    session = init.headers['Mcp-Session-Id'] || '';
  }
  return headers(Object.assign(session ? { 'mcp-session-id': session } : {}, extra || {}));
}
