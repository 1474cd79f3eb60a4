// Closed model: ramping VUs, requests in groups, checks that pass and
// checks that fail. Requests go to __ENV.BASE (a loopback test server) only.
import http from 'k6/http';
import { check, group, sleep } from 'k6';

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus', startVUs: 0, gracefulRampDown: '0s',
      stages: [
        { duration: '1s', target: 3 },
        { duration: '1s', target: 3 },
        { duration: '500ms', target: 0 },
      ],
    },
  },
  thresholds: {
    'http_reqs{name:login}': ['count>0'],
    'http_reqs{name:browse}': ['count>0'],
    checks: ['rate>0'],
  },
};

export default function () {
  group('login', () => {
    const r = http.post(`${__ENV.BASE}/`, 'user=1', { tags: { name: 'login' } });
    check(r, { 'login ok': (x) => x.status === 200 });
  });
  group('browse', () => {
    const r = http.get(`${__ENV.BASE}/fail`, { tags: { name: 'browse' } });
    check(r, { 'browse ok': (x) => x.status === 200 });
  });
  sleep(0.05);
}
