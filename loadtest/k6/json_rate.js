// (a1) tools/call answered as JSON after a 2 ms service time, at a constant arrival rate:
// the latency budget case (p95 overhead below 5%).
import http from 'k6/http';
import { check } from 'k6';
import { TARGET, DURATION, summaryTrendStats, sessionHeaders, call } from './common.js';

export const options = {
  summaryTrendStats,
  scenarios: {
    json_rate: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE || 300), timeUnit: '1s', duration: DURATION, preAllocatedVUs: 50, maxVUs: 200 },
  },
};

export default function () {
  const r = http.post(TARGET, call(1), { headers: sessionHeaders(http, { 'x-mock-service-ms': '2' }) });
  check(r, { '200': (res) => res.status === 200 });
}
