// 90 iterations shared by whoever runs this test, and a check; its data
// comes from a module and an open()ed file, so the archive must hold both.
import http from 'k6/http';
import { check } from 'k6';
import { path } from './lib.js';

const word = open('./data.txt').trim();

export const options = {
  scenarios: {
    shared: { executor: 'shared-iterations', vus: 3, iterations: 90, maxDuration: '30s' },
  },
  thresholds: {
    http_reqs: ['count==90'],          // only the merged data can pass this
    checks: ['rate==1'],
    iteration_duration: ['max<30000'], // not measured by loadcap: k6's verdicts
  },
};

export default function () {
  const r = http.get(__ENV.BASE + path() + '?w=' + word);
  check(r, { 'status 200': (x) => x.status === 200 });
}
