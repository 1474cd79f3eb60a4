// Opens (init code) and imports (require) paths chosen only when it runs,
// from -e OPEN and -e REQUIRE: what a coordinator could try on an agent
// that runs its archive.
if (__ENV.OPEN) {
  open(__ENV.OPEN);
}
if (__ENV.REQUIRE) {
  require(__ENV.REQUIRE);
}

export const options = { iterations: 1, vus: 1 };

export default function () {}
