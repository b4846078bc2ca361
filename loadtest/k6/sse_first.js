// (b2) tools/call answered as SSE whose first event leaves the mock at once (one progress
// event, no spacing, then the result), at a constant arrival rate: the request's duration is
// the time to the first event (the result follows in the same write), so the p95 a proxy adds
// is what it adds to an SSE stream's first event.
import http from 'k6/http';
import { check } from 'k6';
import { TARGET, DURATION, summaryTrendStats, sessionHeaders, call } from './common.js';

export const options = {
  summaryTrendStats,
  scenarios: {
    sse_first: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE || 300), timeUnit: '1s', duration: DURATION, preAllocatedVUs: 50, maxVUs: 200 },
  },
};

export default function () {
  const r = http.post(TARGET, call(1), { headers: sessionHeaders(http, { 'x-mock-mode': 'sse', 'x-mock-events': '1', 'x-mock-spacing-ms': '0' }) });
  check(r, { '200 with the event and the result': (res) => res.status === 200 && res.body.includes('notifications/progress') && res.body.includes('"result"') });
}
