// (c) session churn: initialize, three calls in the session, DELETE.
import http from 'k6/http';
import { check } from 'k6';
import { TARGET, DURATION, summaryTrendStats, headers, call } from './common.js';

export const options = { summaryTrendStats, vus: Number(__ENV.VUS || 16), duration: DURATION };

export default function () {
  const init = http.post(TARGET, JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} }), { headers: headers() });
  const sid = init.headers['Mcp-Session-Id'];
  check(init, { 'initialize issued a session': () => init.status === 200 && !!sid });
  if (!sid) return;
  for (let i = 1; i <= 3; i++) {
    const r = http.post(TARGET, call(i), { headers: headers({ 'mcp-session-id': sid }) });
    check(r, { 'call in session': (res) => res.status === 200 });
  }
  const d = http.del(TARGET, null, { headers: headers({ 'mcp-session-id': sid }) });
  check(d, { 'DELETE': (res) => res.status === 200 });
}
