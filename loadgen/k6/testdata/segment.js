// One open-model scenario that agents split by execution segment.
// Requests go to __ENV.BASE (loopback) only.
import http from 'k6/http';

export const options = {
  scenarios: {
    split: { executor: 'constant-arrival-rate', rate: 20, timeUnit: '1s', duration: '2s', preAllocatedVUs: 4 },
  },
  thresholds: { http_reqs: ['count>0'] },
};

export default function () {
  http.get(`${__ENV.BASE}/`, { tags: { name: 'home' } });
}
