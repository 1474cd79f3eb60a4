// Open model: two constant-arrival-rate scenarios, one of which overloads
// its VUs so that k6 drops iterations. Requests go to __ENV.BASE (a
// loopback test server) only.
import http from 'k6/http';

export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate', rate: 20, timeUnit: '1s', duration: '2s',
      preAllocatedVUs: 4, exec: 'steady',
    },
    overload: {
      executor: 'constant-arrival-rate', rate: 20, timeUnit: '1s', duration: '2s',
      preAllocatedVUs: 1, maxVUs: 2, exec: 'overload',
    },
  },
  thresholds: {
    'http_reqs{scenario:steady}': ['count>0'],
    'http_reqs{scenario:overload}': ['count>0'],
    'http_req_duration{scenario:steady}': ['p(95)<1000', 'max<10000'],
    dropped_iterations: ['count>=0'],
  },
};

export function steady() {
  http.get(`${__ENV.BASE}/`, { tags: { name: 'home' } });
}

export function overload() {
  http.get(`${__ENV.BASE}/slow`, { tags: { name: 'slow' } });
}
