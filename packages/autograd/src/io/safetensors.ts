/**
 * The safetensors format (https://github.com/huggingface/safetensors), in pure TypeScript with no
 * platform imports, so it runs in browsers as well as Node.
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
 *   { "__metadata__": { "k": "v" }, "name": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] }, … }
 * padded with spaces so the data starts at a multiple of 8, then the tensor bytes (little-endian,
 * row-major); offsets are relative to the start of the byte buffer.
 *
 * The writer lays tensors out contiguously ordered by element size (largest first) and then by name
 * (code-point order), as the reference writer does, so every tensor is naturally aligned, which
 * PyTorch's zero-copy loader requires. The reader accepts any tensor order but, like the reference
 * reader, requires the tensors to tile the byte buffer exactly (no overlaps, gaps or trailing bytes).
 *
 * Headers are checked before anything is allocated: a key that occurs twice (a tensor, `__metadata__`, a
 * metadata key or a field) and the name `__proto__` are refused, as are offsets outside the file.
 */
import { findDuplicateKey } from "./json-keys.js";

/** Element types stored in safetensors files that this library reads and writes. */
export type SafeDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Typed arrays that hold tensor data (F16/BF16 as raw Uint16 bit patterns, BOOL as 0/1 bytes). */
export type RawTensorData = Float64Array | Float32Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array | Uint16Array;

/** One tensor: dtype, row-major shape and its elements. */
export interface RawTensor {
  dtype: SafeDType;
  shape: number[];
  data: RawTensorData;
}

/** Contents of a safetensors file. */
export interface SafetensorsContents {
  tensors: Record<string, RawTensor>;
  metadata: Record<string, string>;
}

type ArrayCtor =
  | Float64ArrayConstructor
  | Float32ArrayConstructor
  | Int32ArrayConstructor
  | Int16ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | BigInt64ArrayConstructor
  | Uint16ArrayConstructor;

const DTYPES: Record<SafeDType, { size: number; ctor: ArrayCtor }> = {
  F64: { size: 8, ctor: Float64Array },
  F32: { size: 4, ctor: Float32Array },
  F16: { size: 2, ctor: Uint16Array },
  BF16: { size: 2, ctor: Uint16Array },
  I64: { size: 8, ctor: BigInt64Array },
  I32: { size: 4, ctor: Int32Array },
  I16: { size: 2, ctor: Int16Array },
  I8: { size: 1, ctor: Int8Array },
  U8: { size: 1, ctor: Uint8Array },
  BOOL: { size: 1, ctor: Uint8Array },
};

const DTYPE_LIST = Object.keys(DTYPES).join(", ");

/** Largest header the reader accepts (the reference implementation's limit). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";

/** A name that a plain object cannot hold as an ordinary key (assigning it replaces the prototype). */
const PROTO_KEY = "__proto__";

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isSafeDType(s: unknown): s is SafeDType {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(DTYPES, s);
}

/** Number of elements of a shape, validating that each dimension is a non-negative safe integer. */
function numel(fn: string, name: string, shape: unknown): number {
  if (!Array.isArray(shape)) {
    throw new Error(`${fn}: tensor '${name}' has shape ${JSON.stringify(shape)}; expected an array of non-negative integers`);
  }
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw new Error(`${fn}: tensor '${name}' has shape ${JSON.stringify(shape)}; expected an array of non-negative integers`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new Error(`${fn}: tensor '${name}' shape ${JSON.stringify(shape)} is too large`);
  return n;
}

/** Compares strings by Unicode code point (the order of their UTF-8 bytes). */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const d = (x.value.codePointAt(0) ?? 0) - (y.value.codePointAt(0) ?? 0);
    if (d !== 0) return d;
  }
}

/** Copies `count` elements of `size` bytes, swapping byte order when the host is big-endian. */
function copyLittleEndian(src: Uint8Array, dst: Uint8Array, dstOffset: number, size: number): void {
  if (HOST_LITTLE_ENDIAN || size === 1) {
    dst.set(src, dstOffset);
    return;
  }
  for (let i = 0; i < src.length; i += size) {
    for (let j = 0; j < size; j++) dst[dstOffset + i + j] = src[i + size - 1 - j];
  }
}

/** Serialises tensors (and optional string metadata) to safetensors bytes readable by the reference library. */
export function encodeSafetensors(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  const fn = "encodeSafetensors";
  if (tensors === null || typeof tensors !== "object") throw new Error(`${fn}: tensors must be an object of name → tensor`);
  const entries: { name: string; t: RawTensor; size: number; bytes: number }[] = [];
  for (const name of Object.keys(tensors)) {
    const t = tensors[name];
    if (name === METADATA_KEY) throw new Error(`${fn}: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (name.length === 0) throw new Error(`${fn}: tensor names must be non-empty`);
    if (name === PROTO_KEY) throw new Error(`${fn}: '${PROTO_KEY}' cannot name a tensor (readers would drop it)`);
    if (t === null || typeof t !== "object") throw new Error(`${fn}: tensor '${name}' is not an object`);
    if (!isSafeDType(t.dtype)) {
      throw new Error(`${fn}: tensor '${name}' has unknown dtype '${String(t.dtype)}'; expected one of ${DTYPE_LIST}`);
    }
    const info = DTYPES[t.dtype];
    const n = numel(fn, name, t.shape);
    if (!(t.data instanceof info.ctor)) {
      const got = (t.data as object | null)?.constructor?.name ?? String(t.data);
      throw new Error(`${fn}: tensor '${name}' (dtype ${t.dtype}) has data of type ${got}; expected ${info.ctor.name}`);
    }
    if (t.data.length !== n) {
      throw new Error(`${fn}: tensor '${name}' has ${t.data.length} elements but shape ${JSON.stringify(t.shape)} needs ${n}`);
    }
    if (t.dtype === "BOOL") {
      const d = t.data as Uint8Array;
      for (let i = 0; i < d.length; i++) {
        if (d[i] > 1) throw new Error(`${fn}: BOOL tensor '${name}' has value ${d[i]} at index ${i}; expected 0 or 1`);
      }
    }
    entries.push({ name, t, size: info.size, bytes: n * info.size });
  }
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
      throw new Error(`${fn}: metadata must be an object of string → string`);
    }
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new Error(`${fn}: metadata['${k}'] is ${typeof v}; expected a string`);
      if (k === PROTO_KEY) throw new Error(`${fn}: '${PROTO_KEY}' cannot be a metadata key (readers would drop it)`);
    }
  }
  entries.sort((a, b) => b.size - a.size || compareCodePoints(a.name, b.name));
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    const kv = Object.keys(metadata).map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${kv.join(",")}}`);
  }
  let offset = 0;
  for (const e of entries) {
    const info = `{"dtype":${JSON.stringify(e.t.dtype)},"shape":${JSON.stringify(e.t.shape)},"data_offsets":[${offset},${offset + e.bytes}]}`;
    parts.push(`${JSON.stringify(e.name)}:${info}`);
    offset += e.bytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLen = Math.ceil(json.length / 8) * 8;
  const total = 8 + headerLen + offset;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLen % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLen / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const e of entries) {
    const d = e.t.data;
    copyLittleEndian(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), out, pos, e.size);
    pos += e.bytes;
  }
  return out;
}

/** Parses safetensors bytes, validating the header and offsets; tensor data is copied into fresh aligned arrays. */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsContents {
  const fn = "decodeSafetensors";
  if (!(bytes instanceof Uint8Array)) throw new Error(`${fn}: input must be a Uint8Array`);
  if (bytes.length < 8) {
    throw new Error(`${fn}: truncated file: ${bytes.length} bytes, expected at least 8 (the u64 header length)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenLo = view.getUint32(0, true);
  const lenHi = view.getUint32(4, true);
  const headerLen = lenHi * 2 ** 32 + lenLo;
  if (headerLen > SAFETENSORS_MAX_HEADER_BYTES) {
    throw new Error(`${fn}: header length ${headerLen} exceeds the limit of ${SAFETENSORS_MAX_HEADER_BYTES} bytes`);
  }
  if (8 + headerLen > bytes.length) {
    throw new Error(
      `${fn}: header length ${headerLen} goes beyond the end of the file (${bytes.length} bytes); ` +
        `expected at most ${bytes.length - 8} (file truncated?)`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    throw new Error(`${fn}: header is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`${fn}: header is not valid JSON (${why}); expected a JSON object`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new Error(`${fn}: header JSON is ${Array.isArray(header) ? "an array" : String(header)}; expected an object`);
  }
  const dup = findDuplicateKey(text);
  if (dup !== null) {
    const where = dup.path === "" ? "the header" : `header entry '${dup.path}'`;
    throw new Error(`${fn}: ${where} has the key '${dup.key}' twice; expected each tensor, metadata key and field once`);
  }
  const bufStart = 8 + headerLen;
  const bufLen = bytes.length - bufStart;
  const metadata: Record<string, string> = {};
  const spans: { name: string; begin: number; end: number; dtype: SafeDType; shape: number[] }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        throw new Error(`${fn}: '${METADATA_KEY}' must be an object of string → string`);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw new Error(`${fn}: metadata['${k}'] is ${typeof v}; expected a string`);
        if (k === PROTO_KEY) throw new Error(`${fn}: metadata key '${PROTO_KEY}' is not allowed; expected ordinary key names`);
        metadata[k] = v;
      }
      continue;
    }
    if (name === PROTO_KEY)
      throw new Error(`${fn}: a tensor is named '${PROTO_KEY}'; that name is not allowed, expected ordinary tensor names`);
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw new Error(`${fn}: entry for tensor '${name}' must be an object with dtype, shape and data_offsets`);
    }
    const info = raw as Record<string, unknown>;
    if (!isSafeDType(info.dtype)) {
      throw new Error(`${fn}: tensor '${name}' has unknown dtype '${String(info.dtype)}'; expected one of ${DTYPE_LIST}`);
    }
    const n = numel(fn, name, info.shape);
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)) {
      throw new Error(`${fn}: tensor '${name}' has data_offsets ${JSON.stringify(offs)}; expected [begin, end] non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) throw new Error(`${fn}: tensor '${name}' has data_offsets [${begin}, ${end}] with begin > end`);
    if (end > bufLen) {
      throw new Error(`${fn}: tensor '${name}' has data_offsets [${begin}, ${end}] out of range; the byte buffer has ${bufLen} bytes`);
    }
    const expected = n * DTYPES[info.dtype].size;
    if (end - begin !== expected) {
      throw new Error(
        `${fn}: tensor '${name}' spans ${end - begin} bytes but dtype ${info.dtype} × shape ` +
          `${JSON.stringify(info.shape)} needs ${expected}`,
      );
    }
    spans.push({ name, begin, end, dtype: info.dtype, shape: (info.shape as number[]).slice() });
  }
  const sorted = spans.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev = 0;
  let prevName = "";
  for (const s of sorted) {
    if (s.begin < prev) {
      throw new Error(
        `${fn}: tensor '${s.name}' [${s.begin}, ${s.end}] overlaps tensor '${prevName}' ending at ${prev}; ` +
          `expected tensors to tile the byte buffer without overlap`,
      );
    }
    if (s.begin > prev) {
      throw new Error(
        `${fn}: gap of ${s.begin - prev} bytes before tensor '${s.name}' (starts at ${s.begin}, previous data ends at ${prev}); ` +
          `expected tensors to tile the byte buffer contiguously`,
      );
    }
    prev = s.end;
    prevName = s.name;
  }
  if (prev !== bufLen) {
    throw new Error(`${fn}: tensor data ends at byte ${prev} but the buffer has ${bufLen} bytes; expected no trailing bytes`);
  }
  const tensors: Record<string, RawTensor> = {};
  for (const s of spans) {
    const { size, ctor } = DTYPES[s.dtype];
    const copy = new Uint8Array(s.end - s.begin);
    copyLittleEndian(bytes.subarray(bufStart + s.begin, bufStart + s.end), copy, 0, size);
    const data = new ctor(copy.buffer, 0, (s.end - s.begin) / size);
    tensors[s.name] = { dtype: s.dtype, shape: s.shape, data };
  }
  return { tensors, metadata };
}

/** Rounds a float64 to the nearest (ties to even) value of a binary format with eBits/mBits; returns its bits. */
function roundToMinifloat(x: number, eBits: number, mBits: number): number {
  const signBit = 1 << (eBits + mBits);
  const expMax = (1 << eBits) - 1;
  const bias = (1 << (eBits - 1)) - 1;
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  const ax = Math.abs(x);
  if (ax === Infinity) return sign | (expMax << mBits);
  if (ax === 0) return sign;
  let e = Math.floor(Math.log2(ax));
  if (2 ** e > ax) e--;
  else if (2 ** (e + 1) <= ax) e++;
  const minExp = 1 - bias;
  const quantumExp = (e < minExp ? minExp : e) - mBits;
  const scaled = ax / 2 ** quantumExp; // exact: division by a power of two, far from under/overflow
  let k = Math.floor(scaled);
  const frac = scaled - k;
  if (frac > 0.5 || (frac === 0.5 && k % 2 === 1)) k++;
  if (e < minExp) return sign | k; // subnormal (k = 2^mBits encodes the smallest normal)
  const hidden = 2 ** mBits;
  if (k === 2 * hidden) {
    k = hidden;
    e++;
  }
  const expField = e + bias;
  if (expField >= expMax) return sign | (expMax << mBits);
  return sign | (expField << mBits) | (k - hidden);
}

/** f32 bit pattern of element i of a float array (exact for Float32Array, including NaN payloads). */
function nanBitsF32(x: Float32Array | Float64Array, bits: Uint32Array | null, i: number): number {
  if (bits) return bits[i];
  const f = new Float32Array([x[i]]);
  return new Uint32Array(f.buffer)[0];
}

/** Converts IEEE binary16 bit patterns to float32 (exact, NaN payloads kept). */
export function f16ToF32(u16: Uint16Array): Float32Array {
  const out = new Float32Array(u16.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < u16.length; i++) {
    const h = u16[i];
    const s = (h & 0x8000) << 16;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0x1f) bits[i] = (s | 0x7f800000 | (m << 13)) >>> 0;
    else if (e === 0) out[i] = (s ? -1 : 1) * m * 2 ** -24;
    else bits[i] = (s | ((e + 112) << 23) | (m << 13)) >>> 0;
  }
  return out;
}

/** Converts bfloat16 bit patterns to float32 (exact: the upper half of the float32 bits). */
export function bf16ToF32(u16: Uint16Array): Float32Array {
  const out = new Float32Array(u16.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < u16.length; i++) bits[i] = (u16[i] << 16) >>> 0;
  return out;
}

/**
 * Rounds floats to IEEE binary16 bit patterns (round to nearest, ties to even; overflow → ±Infinity;
 * NaN stays NaN, keeping the top payload bits of a float32 NaN).
 */
export function f32ToF16(x: Float32Array | Float64Array): Uint16Array {
  const out = new Uint16Array(x.length);
  const bits = x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length) : null;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (Number.isNaN(v)) {
      const b = nanBitsF32(x, bits, i);
      const m = (b & 0x7fffff) >>> 13;
      out[i] = ((b >>> 16) & 0x8000) | 0x7c00 | (m === 0 ? 0x200 : m);
    } else {
      out[i] = roundToMinifloat(v, 5, 10);
    }
  }
  return out;
}

/**
 * Rounds floats to bfloat16 bit patterns (round to nearest, ties to even; overflow → ±Infinity;
 * NaN stays NaN, keeping the top payload bits of a float32 NaN).
 */
export function f32ToBf16(x: Float32Array | Float64Array): Uint16Array {
  const out = new Uint16Array(x.length);
  const bits = x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length) : null;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (Number.isNaN(v)) {
      const b = nanBitsF32(x, bits, i);
      const m = (b >>> 16) & 0x7f;
      out[i] = ((b >>> 16) & 0xff80) | (m === 0 ? 0x40 : m);
    } else {
      out[i] = roundToMinifloat(v, 8, 7);
    }
  }
  return out;
}
