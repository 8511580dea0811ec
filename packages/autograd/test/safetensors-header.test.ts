import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeSafetensors, encodeSafetensors } from "../src/index.js";
import { findDuplicateKey } from "../src/io/json-keys.js";

/** A safetensors file with the given header text and data bytes. */
function file(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const T = (a: number, b: number) => `{"dtype":"F32","shape":[1],"data_offsets":[${a},${b}]}`;
const DATA = new Uint8Array(new Float32Array([1, 2]).buffer);

test("safetensors: duplicated keys are refused naming the key and where, never read last-wins", () => {
  const cases: [string, RegExp][] = [
    [`{"w":${T(0, 4)},"w":${T(4, 8)}}`, /the header has the key 'w' twice/],
    [`{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"},"w":${T(0, 4)},"v":${T(4, 8)}}`, /the header has the key '__metadata__' twice/],
    [`{"__metadata__":{"a":"1","a":"2"},"w":${T(0, 4)},"v":${T(4, 8)}}`, /header entry '__metadata__' has the key 'a' twice/],
    [`{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":${T(4, 8)}}`, /header entry 'w' has the key 'dtype' twice/],
    [`{"w":${T(0, 4)},"\\u0077":${T(4, 8)}}`, /the header has the key 'w' twice/],
  ];
  for (const [h, re] of cases) assert.throws(() => decodeSafetensors(file(h, DATA)), re);
});

test("safetensors: a tensor or metadata key named __proto__ is refused by the reader and the writer", () => {
  assert.throws(() => decodeSafetensors(file(`{"__proto__":${T(0, 4)},"w":${T(4, 8)}}`, DATA)), /a tensor is named '__proto__'/);
  assert.throws(
    () => decodeSafetensors(file(`{"__metadata__":{"__proto__":"x"},"w":${T(0, 8).replace("[1]", "[2]")}}`, DATA)),
    /metadata key '__proto__' is not allowed/,
  );
  const t = { dtype: "F32" as const, shape: [1], data: new Float32Array([1]) };
  const named = Object.defineProperty({}, "__proto__", { value: t, enumerable: true }) as Record<string, typeof t>;
  assert.throws(() => encodeSafetensors(named), /'__proto__' cannot name a tensor/);
  const md = Object.defineProperty({}, "__proto__", { value: "x", enumerable: true }) as Record<string, string>;
  assert.throws(() => encodeSafetensors({ w: t }, md), /'__proto__' cannot be a metadata key/);
  // ordinary names that look special still round-trip
  const ok = decodeSafetensors(encodeSafetensors({ constructor: t, toString: t, hasOwnProperty: t }, { constructor: "c" }));
  assert.deepEqual(Object.keys(ok.tensors).sort(), ["constructor", "hasOwnProperty", "toString"]);
  assert.equal(ok.metadata.constructor, "c");
});

test("findDuplicateKey matches a reference built from the key lists (2,000 generated JSON objects)", () => {
  const key = fc.constantFrom("a", "b", "c", "é", 'q"x', "a\\b", "__proto__", "\u2028");
  type Obj = { entries: [string, Node][] };
  type Node = number | string | Obj | Node[];
  const { node } = fc.letrec<{ node: Node; obj: Obj }>((tie) => ({
    node: fc.oneof({ depthSize: "small" }, fc.integer(), fc.string({ maxLength: 3 }), tie("obj"), fc.array(tie("node"), { maxLength: 3 })),
    obj: fc.record({ entries: fc.array(fc.tuple(key, tie("node")), { maxLength: 4 }) }),
  }));
  const text = (n: Node): string =>
    typeof n === "number" || typeof n === "string"
      ? JSON.stringify(n)
      : Array.isArray(n)
        ? `[${n.map(text).join(", ")}]`
        : `{${n.entries.map(([k, v]) => `${JSON.stringify(k)} : ${text(v)}`).join(",")}}`;
  const hasDup = (n: Node): boolean =>
    typeof n === "number" || typeof n === "string"
      ? false
      : Array.isArray(n)
        ? n.some(hasDup)
        : new Set(n.entries.map(([k]) => k)).size !== n.entries.length || n.entries.some(([, v]) => hasDup(v));
  fc.assert(
    fc.property(node, (n) => {
      const s = text(n);
      JSON.parse(s);
      assert.equal(findDuplicateKey(s) !== null, hasDup(n), s);
    }),
    { numRuns: 2000, seed: 16 },
  );
});
