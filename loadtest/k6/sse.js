// (b) tools/call answered as SSE: 3 progress events 5 ms apart, then the result.
import http from 'k6/http';
import { check } from 'k6';
import { TARGET, DURATION, summaryTrendStats, sessionHeaders, call } from './common.js';

export const options = { summaryTrendStats, vus: Number(__ENV.VUS || 32), duration: DURATION };

export default function () {
  const r = http.post(TARGET, call(1), { headers: sessionHeaders(http, { 'x-mock-mode': 'sse', 'x-mock-events': '3', 'x-mock-spacing-ms': '5' }) });
  check(r, { '200 with the result': (res) => res.status === 200 && res.body.includes('"result"') });
}
