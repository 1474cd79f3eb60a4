// The drill's shadow tag through the k6/x/loadcap module, and the drill id
// through __ENV. Requests go to __ENV.BASE (loopback) only.
import http from 'k6/http';
import loadcap from 'k6/x/loadcap';
import { headers } from 'k6/x/loadcap';

export const options = { iterations: 3, vus: 1 };

export default function () {
  http.get(`${__ENV.BASE}/tag`, { headers: loadcap.headers() });
  const h = Object.assign({}, headers(), { 'X-Env-Drill': __ENV.LOADCAP_DRILL_ID, 'X-Module-Drill': loadcap.drillId });
  http.get(`${__ENV.BASE}/tag`, { headers: h });
}
