/**
 * Duplicate object keys in JSON text. `JSON.parse` keeps the last of two equal keys without a word, so a
 * header such as `{"w": {…}, "w": {…}}` would silently drop a tensor; callers that must not lose data run
 * this over text that `JSON.parse` has already accepted.
 */

/** The first object key that occurs twice in one object of `text` (valid JSON), with its dotted path; null when none. */
export function findDuplicateKey(text: string): { path: string; key: string } | null {
  const stack: { keys: Set<string> | null; path: string; key: string | null }[] = [];
  let expectKey = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: find its end, skipping escapes
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) j += 2;
        else if (d === 0x22) break;
        else j++;
      }
      const top = stack.at(-1);
      if (expectKey && top !== undefined && top.keys !== null) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { path: top.path, key };
        top.keys.add(key);
        top.key = key;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b || c === 0x5b) {
      const parent = stack.at(-1);
      const p = parent === undefined ? "" : parent.keys !== null && parent.key !== null ? join(parent.path, parent.key) : parent.path;
      stack.push({ keys: c === 0x7b ? new Set() : null, path: p, key: null });
      expectKey = c === 0x7b;
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      expectKey = stack.at(-1)?.keys != null;
    }
    i++;
  }
  return null;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}
