// A long closed-model run that the test stops after its first second.
// Requests go to __ENV.BASE (loopback) only.
import http from 'k6/http';
import { sleep } from 'k6';

export const options = { vus: 2, duration: '30s' };

export default function () {
  http.get(`${__ENV.BASE}/`);
  sleep(0.05);
}
