// (cache) tools/list in a session, JSON, 32 VUs as fast as they go; the upstream takes
// MOCK_SERVICE_MS (default 2) per answer and marks it fresh for 60 s (ttlMs), so a proxy
// with the result cache answers all but the first itself.
import http from 'k6/http';
import { check } from 'k6';
import { TARGET, DURATION, summaryTrendStats, sessionHeaders } from './common.js';

export const options = { summaryTrendStats, vus: Number(__ENV.VUS || 32), duration: DURATION };

const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} });

export default function () {
  const extra = { 'x-mock-service-ms': String(__ENV.MOCK_SERVICE_MS || 2) };
  const r = http.post(TARGET, body, { headers: sessionHeaders(http, extra) });
  check(r, { '200': (res) => res.status === 200 && res.body.indexOf('tool_19') > 0 });
}
