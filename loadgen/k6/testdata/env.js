// Fails (k6 exit 107) when the script can read a variable of the child's
// environment that its k6 arguments did not declare.
import http from 'k6/http';

if (__ENV.LOADCAP_TEST_SECRET !== undefined) {
  throw new Error('the script read the environment: LOADCAP_TEST_SECRET=' + __ENV.LOADCAP_TEST_SECRET);
}
if (__ENV.BASE === undefined) {
  throw new Error('BASE, declared with --env, is missing');
}

export const options = { iterations: 1, vus: 1 };

export default function () {
  http.get(`${__ENV.BASE}/`);
}
