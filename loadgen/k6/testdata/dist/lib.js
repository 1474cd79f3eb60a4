// A module the archive must carry.
export function path() { return '/'; }
