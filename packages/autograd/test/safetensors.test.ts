import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { encodeSafetensors, decodeSafetensors, f16ToF32, bf16ToF32, f32ToF16, f32ToBf16, type RawTensor } from "../src/io/safetensors.js";
import {
  readSafetensorsFile,
  writeSafetensorsFile,
  readSafetensorsFileSync,
  writeSafetensorsFileSync,
} from "../src/io/safetensors-node.js";

/** Raw bytes of a typed array (bit patterns, never via JS numbers). */
const bytesOf = (a: ArrayBufferView) => Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

/** Builds a file by hand from the spec: u64 LE header length, JSON padded with spaces, data. */
function handBuild(json: string, data: number[]): Uint8Array {
  const j = Array.from(json, (c) => c.charCodeAt(0)); // ASCII-only JSON in these fixtures
  while (j.length % 8 !== 0) j.push(0x20);
  const len = j.length;
  const head = [len & 0xff, (len >>> 8) & 0xff, (len >>> 16) & 0xff, (len >>> 24) & 0xff, 0, 0, 0, 0];
  return Uint8Array.from([...head, ...j, ...data]);
}

function allDTypes(): Record<string, RawTensor> {
  const f32 = new Float32Array(6);
  const f32bits = new Uint32Array(f32.buffer);
  f32bits.set([0x3f800000, 0x80000000, 0x7fc00001, 0x7f800001, 0xff812345, 0x00000001]); // 1, −0, NaN payloads, subnormal
  const f64 = new Float64Array(4);
  const f64bits = new BigUint64Array(f64.buffer);
  f64bits.set([0x3ff0000000000000n, 0x8000000000000000n, 0x7ff8000000000123n, 0xfff0000000000001n]);
  return {
    f64: { dtype: "F64", shape: [2, 2], data: f64 },
    f32: { dtype: "F32", shape: [3, 2], data: f32 },
    f16: { dtype: "F16", shape: [5], data: Uint16Array.of(0x3c00, 0x8000, 0x7e01, 0x7c01, 0x0001) },
    bf16: { dtype: "BF16", shape: [1, 4], data: Uint16Array.of(0x3f80, 0x8000, 0x7fc1, 0xff81) },
    i64: { dtype: "I64", shape: [3], data: BigInt64Array.of(-(2n ** 63n), -1n, 2n ** 63n - 1n) },
    i32: { dtype: "I32", shape: [3], data: Int32Array.of(-(2 ** 31), -1, 2 ** 31 - 1) },
    i16: { dtype: "I16", shape: [2], data: Int16Array.of(-32768, 32767) },
    i8: { dtype: "I8", shape: [3], data: Int8Array.of(-128, 0, 127) },
    u8: { dtype: "U8", shape: [2, 1, 1], data: Uint8Array.of(0, 255) },
    bool: { dtype: "BOOL", shape: [3], data: Uint8Array.of(1, 0, 1) },
    scalar: { dtype: "F32", shape: [], data: Float32Array.of(2.5) },
    empty: { dtype: "I32", shape: [0, 4], data: new Int32Array(0) },
  };
}

describe("safetensors encode/decode", () => {
  test("a hand-built file matching the spec decodes, and encoding reproduces it byte for byte", () => {
    const json =
      '{"__metadata__":{"format":"pt"},' +
      '"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"b":{"dtype":"I8","shape":[3],"data_offsets":[8,11]}}';
    // w = [1.0, -2.0] as little-endian float32, then b = [1, -1, 127].
    const data = [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x01, 0xff, 0x7f];
    const file = handBuild(json, data);
    assert.equal((8 + file[0]) % 8, 0);
    const { tensors, metadata } = decodeSafetensors(file);
    assert.deepEqual(metadata, { format: "pt" });
    assert.equal(tensors.w.dtype, "F32");
    assert.deepEqual(tensors.w.shape, [2]);
    assert.deepEqual(Array.from(tensors.w.data as Float32Array), [1, -2]);
    assert.deepEqual(Array.from(tensors.b.data as Int8Array), [1, -1, 127]);
    // Insertion order deliberately differs from the layout order (I8 is written after F32 regardless).
    const enc = encodeSafetensors(
      { b: { dtype: "I8", shape: [3], data: Int8Array.of(1, -1, 127) }, w: { dtype: "F32", shape: [2], data: Float32Array.of(1, -2) } },
      { format: "pt" },
    );
    assert.deepEqual(Array.from(enc), Array.from(file));
  });

  test("layout: header padded with spaces to a multiple of 8, tensors by element size then name, contiguous", () => {
    const enc = encodeSafetensors({
      z8: { dtype: "U8", shape: [1], data: Uint8Array.of(9) },
      a2: { dtype: "F16", shape: [1], data: Uint16Array.of(0x3c00) },
      b4: { dtype: "I32", shape: [1], data: Int32Array.of(7) },
      a4: { dtype: "F32", shape: [1], data: Float32Array.of(1) },
      c8: { dtype: "F64", shape: [1], data: Float64Array.of(1) },
    });
    const n = new DataView(enc.buffer).getUint32(0, true);
    assert.equal(new DataView(enc.buffer).getUint32(4, true), 0);
    assert.equal(n % 8, 0);
    const header = new TextDecoder().decode(enc.subarray(8, 8 + n));
    assert.match(header, /^\{.*\} *$/);
    const trimmed = header.trimEnd();
    assert.ok(
      header.length - trimmed.length < 8 &&
        header
          .slice(trimmed.length)
          .split("")
          .every((c) => c === " "),
    );
    const parsed = JSON.parse(header) as Record<string, { data_offsets: [number, number] }>;
    assert.deepEqual(Object.keys(parsed), ["c8", "a4", "b4", "a2", "z8"]);
    assert.deepEqual(
      Object.values(parsed).map((v) => v.data_offsets),
      [
        [0, 8],
        [8, 12],
        [12, 16],
        [16, 18],
        [18, 19],
      ],
    );
    assert.equal(enc.length, 8 + n + 19);
  });

  test("round trip is bit-exact for every dtype, including NaN payloads, −0, scalars and empty tensors", () => {
    const t = allDTypes();
    const meta = { note: "ünïcode ✓", empty: "" };
    const back = decodeSafetensors(encodeSafetensors(t, meta));
    assert.deepEqual(back.metadata, meta);
    assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(t).sort());
    for (const [name, src] of Object.entries(t)) {
      const got = back.tensors[name];
      assert.equal(got.dtype, src.dtype, name);
      assert.deepEqual(got.shape, src.shape, name);
      assert.equal(got.data.constructor, src.data.constructor, name);
      assert.deepEqual(bytesOf(got.data), bytesOf(src.data), name);
    }
    // Decoding from an unaligned view of a larger buffer works too.
    const enc = encodeSafetensors(t);
    const shifted = new Uint8Array(enc.length + 3);
    shifted.set(enc, 3);
    const again = decodeSafetensors(shifted.subarray(3));
    assert.deepEqual(bytesOf(again.tensors.f64.data), bytesOf(t.f64.data));
  });

  test("encoder validation", () => {
    const f = Float32Array.of(1, 2);
    assert.throws(
      () => encodeSafetensors({ x: { dtype: "F32", shape: [3], data: f } }),
      /encodeSafetensors: tensor 'x' has 2 elements but shape \[3\] needs 3/,
    );
    assert.throws(
      () => encodeSafetensors({ x: { dtype: "F64", shape: [2], data: f } }),
      /tensor 'x' \(dtype F64\) has data of type Float32Array; expected Float64Array/,
    );
    assert.throws(
      () => encodeSafetensors({ x: { dtype: "U32" as "F32", shape: [2], data: f } }),
      /unknown dtype 'U32'; expected one of F64, F32/,
    );
    assert.throws(
      () => encodeSafetensors({ x: { dtype: "F32", shape: [-2], data: f } }),
      /shape \[-2\]; expected an array of non-negative integers/,
    );
    assert.throws(() => encodeSafetensors({ __metadata__: { dtype: "F32", shape: [2], data: f } }), /'__metadata__' is reserved/);
    assert.throws(() => encodeSafetensors({ b: { dtype: "BOOL", shape: [1], data: Uint8Array.of(2) } }), /BOOL tensor 'b' has value 2/);
    assert.throws(() => encodeSafetensors({}, { k: 1 as unknown as string }), /metadata\['k'\] is number; expected a string/);
  });

  describe("decoder rejects corrupt files with a precise reason", () => {
    const good = encodeSafetensors({
      a: { dtype: "F32", shape: [2], data: Float32Array.of(1, 2) },
      b: { dtype: "I8", shape: [2], data: Int8Array.of(1, 2) },
    });
    const withHeader = (json: string, dataLen: number) => handBuild(json, new Array(dataLen).fill(0));

    test("truncated before the length / header", () => {
      assert.throws(() => decodeSafetensors(good.subarray(0, 5)), /truncated file: 5 bytes, expected at least 8/);
      assert.throws(() => decodeSafetensors(good.subarray(0, 20)), /header length \d+ goes beyond the end of the file \(20 bytes\)/);
    });

    test("truncated data", () => {
      assert.throws(
        () => decodeSafetensors(good.subarray(0, good.length - 1)),
        /tensor 'b' has data_offsets \[8, 10\] out of range; the byte buffer has 9 bytes/,
      );
    });

    test("huge header length", () => {
      const bad = good.slice();
      new DataView(bad.buffer).setUint32(4, 1, true);
      assert.throws(() => decodeSafetensors(bad), /header length 4294967\d+ exceeds the limit/);
    });

    test("bad JSON / non-object header / bad UTF-8", () => {
      assert.throws(() => decodeSafetensors(withHeader('{"a": {', 0)), /header is not valid JSON/);
      assert.throws(() => decodeSafetensors(withHeader("[1,2]", 0)), /header JSON is an array; expected an object/);
      const bad = withHeader("{}", 0);
      bad[8] = 0xff;
      assert.throws(() => decodeSafetensors(bad), /header is not valid UTF-8/);
    });

    test("unknown dtype, bad shape, bad offsets", () => {
      assert.throws(
        () => decodeSafetensors(withHeader('{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', 1)),
        /tensor 'a' has unknown dtype 'F8_E4M3'; expected one of/,
      );
      assert.throws(
        () => decodeSafetensors(withHeader('{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', 4)),
        /tensor 'a' has shape \[1.5\]/,
      );
      assert.throws(
        () => decodeSafetensors(withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', 4)),
        /tensor 'a' has data_offsets \[0\]; expected \[begin, end\]/,
      );
      assert.throws(() => decodeSafetensors(withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 4)), /begin > end/);
    });

    test("offsets not matching dtype × shape", () => {
      assert.throws(
        () => decodeSafetensors(withHeader('{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}', 12)),
        /tensor 'a' spans 12 bytes but dtype F32 × shape \[2,2\] needs 16/,
      );
    });

    test("overlapping, gapped and trailing data", () => {
      assert.throws(
        () =>
          decodeSafetensors(
            withHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8),
          ),
        /tensor 'a' \[0, 8\] overlaps tensor 'b' ending at 8|tensor 'b' \[4, 8\] overlaps tensor 'a' ending at 8/,
      );
      assert.throws(
        () => decodeSafetensors(withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8)),
        /gap of 4 bytes before tensor 'a'/,
      );
      assert.throws(
        () => decodeSafetensors(withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 6)),
        /tensor data ends at byte 4 but the buffer has 6 bytes; expected no trailing bytes/,
      );
    });

    test("non-string metadata", () => {
      assert.throws(() => decodeSafetensors(withHeader('{"__metadata__":{"k":3}}', 0)), /metadata\['k'\] is number; expected a string/);
    });
  });
});

describe("half-precision conversions", () => {
  /** Independent binary16 decoder: (−1)^s · 2^(e−15) · (1 + m/1024), subnormals 2^−14 · m/1024. */
  function halfValue(h: number): number {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 31) return m ? NaN : s * Infinity;
    if (e === 0) return s * 2 ** -14 * (m / 1024);
    return s * 2 ** (e - 15) * (1 + m / 1024);
  }
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);

  test("f16ToF32 decodes known values and every finite pattern exactly", () => {
    const known: [number, number][] = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x7bff, 65504],
      [0x0001, 2 ** -24],
      [0x0400, 2 ** -14],
      [0x3555, 0.333251953125],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    const dec = f16ToF32(Uint16Array.from(known.map((k) => k[0])));
    known.forEach(([, v], i) => assert.equal(dec[i], v));
    const f = f16ToF32(all);
    for (let h = 0; h < 65536; h++) {
      const v = halfValue(h);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(f[h]));
      else assert.ok(Object.is(f[h], v === 0 && h & 0x8000 ? -0 : v), `pattern ${h.toString(16)}`);
    }
  });

  test("f16 → f32 → f16 and bf16 → f32 → bf16 are the identity on all 65536 patterns (NaN payloads too)", () => {
    assert.deepEqual(Array.from(f32ToF16(f16ToF32(all))), Array.from(all));
    assert.deepEqual(Array.from(f32ToBf16(bf16ToF32(all))), Array.from(all));
    const b = bf16ToF32(Uint16Array.of(0x3f80, 0xc0a0, 0x0001));
    assert.deepEqual(Array.from(b), [1, -5, 2 ** -133]);
  });

  test("f32ToF16 / f32ToBf16 round to nearest, ties to even, overflow to infinity", () => {
    // Exhaustive reference: the nearest representable value, ties to even mantissa.
    const check = (x: number, h: number, decode: (h: number) => number, maxFinite: number, lastUlp: number) => {
      const v = decode(h);
      if (Math.abs(x) >= maxFinite + lastUlp / 2) {
        assert.equal(Math.abs(v), Infinity, `overflow of ${x}`);
        return;
      }
      const neighbours = [h - 1, h + 1].filter((k) => k >= 0 && k < 65536).map(decode);
      for (const nb of neighbours) {
        if (!Number.isFinite(nb) || Math.sign(nb) * Math.sign(v) < 0) continue;
        const dv = Math.abs(x - v);
        const dn = Math.abs(x - nb);
        assert.ok(dv < dn || (dv === dn && (h & 1) === 0), `x=${x} → ${v} but ${nb} is nearer or even`);
      }
    };
    const bfValue = (h: number) => bf16ToF32(Uint16Array.of(h))[0];
    const xs = new Float32Array(20000);
    let s = 99;
    for (let i = 0; i < xs.length; i++) {
      s = (s * 16807) % 2147483647;
      const mant = s / 2147483647;
      xs[i] = (i % 2 ? -1 : 1) * mant * 2 ** ((i % 60) - 30);
    }
    const halfs = f32ToF16(xs);
    const bfs = f32ToBf16(xs);
    for (let i = 0; i < xs.length; i++) {
      check(xs[i], halfs[i], halfValue, 65504, 32);
      check(xs[i], bfs[i], bfValue, 3.3895313892515355e38, 2 ** 120);
    }
    // Ties: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 → even (1); 1 + 3·2^-11 → 1 + 2^-9.
    assert.deepEqual(Array.from(f32ToF16(Float32Array.of(1 + 2 ** -11, 1 + 3 * 2 ** -11))), [0x3c00, 0x3c02]);
    assert.deepEqual(
      Array.from(f32ToF16(Float32Array.of(65519, 65520, -1e9, 2 ** -25, 2 ** -25 * 3, -0))),
      [0x7bff, 0x7c00, 0xfc00, 0x0000, 0x0002, 0x8000],
    );
    assert.deepEqual(Array.from(f32ToBf16(Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, -0))), [0x3f80, 0x3f82, 0x7f80, 0x8000]);
    // Float64 input is rounded once (no double rounding through float32).
    const x = 1 + 2 ** -11 + 2 ** -40; // just above a tie: must round up
    assert.deepEqual(Array.from(f32ToF16(Float64Array.of(x))), [0x3c01]);
    assert.ok(Number.isNaN(f16ToF32(f32ToF16(Float64Array.of(NaN)))[0]));
  });
});

describe("safetensors files (Node)", () => {
  let dir = "";
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkvflow-st-"));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const leftovers = () => fs.readdirSync(dir).filter((f) => f.endsWith(".tmp"));

  test("write then read round-trips (async and sync)", async () => {
    const file = path.join(dir, "model.safetensors");
    const t = allDTypes();
    await writeSafetensorsFile(file, t, { step: "10" });
    const back = await readSafetensorsFile(file);
    assert.deepEqual(back.metadata, { step: "10" });
    for (const [k, v] of Object.entries(t)) assert.deepEqual(bytesOf(back.tensors[k].data), bytesOf(v.data));
    assert.deepEqual(Array.from(fs.readFileSync(file)), Array.from(encodeSafetensors(t, { step: "10" })));
    const file2 = path.join(dir, "sync.safetensors");
    writeSafetensorsFileSync(file2, t);
    assert.deepEqual(bytesOf(readSafetensorsFileSync(file2).tensors.f32.data), bytesOf(t.f32.data));
    assert.deepEqual(leftovers(), []);
  });

  test("a failing write leaves the previous file intact and no temporary files", async () => {
    const file = path.join(dir, "ckpt.safetensors");
    const v1 = { w: { dtype: "F32", shape: [2], data: Float32Array.of(1, 2) } as RawTensor };
    await writeSafetensorsFile(file, v1);
    const before = fs.readFileSync(file);
    const v2 = { w: { dtype: "F32", shape: [2], data: Float32Array.of(3, 4) } as RawTensor };

    // 1. The encoder fails (invalid tensor): nothing is touched.
    await assert.rejects(
      writeSafetensorsFile(file, { w: { dtype: "F32", shape: [3], data: Float32Array.of(1) } }),
      /encodeSafetensors: tensor 'w' has 1 elements but shape \[3\] needs 3/,
    );
    // 2. A crash between writing the temporary file and the rename.
    await assert.rejects(
      writeSafetensorsFile(file, v2, undefined, {
        beforeRename: () => {
          throw new Error("simulated crash");
        },
      }),
      /writeSafetensorsFile: '.*ckpt.safetensors': simulated crash/,
    );
    // 3. The temporary file is corrupted (truncated) before the rename: verification catches it.
    await assert.rejects(
      writeSafetensorsFile(file, v2, undefined, { beforeRename: (tmp) => fs.truncateSync(tmp, 10) }),
      /does not match the encoded bytes \(10 vs \d+ bytes\)/,
    );
    assert.throws(
      () => writeSafetensorsFileSync(file, v2, undefined, { beforeRename: (tmp) => fs.writeFileSync(tmp, "garbage") }),
      /writeSafetensorsFileSync: .*does not match the encoded bytes/,
    );
    assert.deepEqual(Array.from(fs.readFileSync(file)), Array.from(before));
    assert.deepEqual(Array.from((await readSafetensorsFile(file)).tensors.w.data as Float32Array), [1, 2]);
    assert.deepEqual(leftovers(), []);
    // 4. The target cannot be replaced (it is a folder): error names the path, temp file removed.
    const asDir = path.join(dir, "folder.safetensors");
    fs.mkdirSync(asDir);
    await assert.rejects(writeSafetensorsFile(asDir, v2), /writeSafetensorsFile: '.*folder.safetensors'/);
    assert.deepEqual(leftovers(), []);
    // A successful write then replaces the file.
    await writeSafetensorsFile(file, v2);
    assert.deepEqual(Array.from((await readSafetensorsFile(file)).tensors.w.data as Float32Array), [3, 4]);
  });

  test("reading a missing or corrupt file names the file", async () => {
    await assert.rejects(readSafetensorsFile(path.join(dir, "nope.safetensors")), /readSafetensorsFile: '.*nope.safetensors': ENOENT/);
    const bad = path.join(dir, "bad.safetensors");
    fs.writeFileSync(bad, Uint8Array.of(1, 2, 3));
    await assert.rejects(readSafetensorsFile(bad), /readSafetensorsFile: '.*bad.safetensors': decodeSafetensors: truncated file/);
    assert.throws(() => readSafetensorsFileSync(bad), /readSafetensorsFileSync: .*truncated file/);
  });
});
