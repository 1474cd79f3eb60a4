// Thresholds that pass and thresholds that fail: k6 exits with 99. Half the
// requests fail with HTTP 500. Requests go to __ENV.BASE (loopback) only.
import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';

export const options = {
  vus: 2,
  duration: '1500ms',
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(99)<5000', 'avg<5000'],
    http_reqs: ['count>100000'],
    'http_req_duration{name:ok}': ['med<5000'],
  },
};

export default function () {
  const fail = exec.scenario.iterationInTest % 2 === 1;
  http.get(`${__ENV.BASE}/${fail ? 'fail' : ''}`, { tags: { name: fail ? 'fail' : 'ok' } });
  sleep(0.02);
}
