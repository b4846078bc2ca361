// (a2) tools/call with JSON responses, no service time, as fast as 32 VUs can go: throughput.
import http from 'k6/http';
import { check } from 'k6';
import { TARGET, DURATION, summaryTrendStats, sessionHeaders, call } from './common.js';

export const options = { summaryTrendStats, vus: Number(__ENV.VUS || 32), duration: DURATION };

export default function () {
  const r = http.post(TARGET, call(1), { headers: sessionHeaders(http) });
  check(r, { '200': (res) => res.status === 200 });
}
