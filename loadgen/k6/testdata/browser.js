// Loads a browser module under a computed name (no text search finds it):
// k6/browser, or -e SUFFIX=experimental/browser.
const name = ['k6', __ENV.SUFFIX || 'browser'].join('/');
const mod = require(name);

export const options = { iterations: 1, vus: 1 };

export default function () {
  if (!mod) {
    throw new Error('no module');
  }
}
