/**
 * Dropout of float32 tensors as one WebAssembly SIMD pass: the Philox-4x32-10 dropout stream of
 * `src/random/philox.ts`, sixteen elements per iteration (four Philox blocks side by side in the lanes of four
 * i32x4 vectors; the 32×32→64-bit products by i64x2.extmul), a 4×4 transpose to element order, then
 * out = (word ≥ t) ? x·s : 0 with one compare, one multiply and one and. Bit-identical to `dropoutInto` (the
 * portable JavaScript pass, which also does the last < 16 elements).
 *
 * The module has its own (unshared) memory: x is copied in and the result out, about 0.1 ms per MiB, small next
 * to the hash. Runtimes without WebAssembly SIMD use `dropoutInto` alone.
 */
import { dropoutInto, dropThreshold, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1 } from "../../../random/philox.js";
import { wasmSimdSupported } from "./runtime.js";
import { type FunctionBuilder, type Local, ModuleBuilder } from "./wasm-emitter.js";

const PAGE = 65536;

interface DropoutModule {
  memory: WebAssembly.Memory;
  /** dropout_f32(x, out, groups, k0, k1, t, scale): groups of 16 elements from block 0 */
  run: (x: number, out: number, groups: number, k0: number, k1: number, t: number, scale: number) => void;
}

let mod: DropoutModule | null | undefined;

/** Byte lanes of the i32 words `w` of the concatenation (a, b) (words 0–3 from a, 4–7 from b). */
const words = (...w: number[]): number[] => w.flatMap((i) => [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]);

/** Emits the module's one function. */
export function buildDropoutModule(mb: ModuleBuilder): void {
  const splat4 = (f: FunctionBuilder, v: number) => f.i32x4Const(v, v, v, v);
  mb.func(
    "dropout_f32",
    { x: "i32", out: "i32", groups: "i32", k0: "i32", k1: "i32", t: "i32", scale: "f32" },
    [],
    (f, x, out, groups, k0, k1, t, scale) => {
      const g = f.local("i32", "g");
      const [c0, c1, c2, c3, a, b, h0, h1, lo0, tv, sv] = f.locals("v128", 11, "v");
      const j = f.local("i32", "j");
      f.get(t).i32x4Splat().set(tv);
      f.get(scale).f32x4Splat().set(sv);
      f.forRange(
        g,
        () => f.i32Const(0),
        () => f.get(groups),
        1,
        () => {
          // counters of blocks 4g .. 4g+3: (j, 0, 0, 0)
          f.get(g).i32Const(4).i32Mul().set(j);
          f.get(j).i32x4Splat().i32x4Const(0, 1, 2, 3).i32x4Add().set(c0);
          f.i32x4Const(0, 0, 0, 0).set(c1);
          f.i32x4Const(0, 0, 0, 0).set(c2);
          f.i32x4Const(0, 0, 0, 0).set(c3);
          f.get(k0).i32x4Splat().set(a);
          f.get(k1).i32x4Splat().set(b);
          for (let r = 0; r < 10; r++) {
            // h0 = hi(c0·M0), h1 = hi(c2·M1): odd words of the two 64-bit product pairs
            splat4(f.get(c0), PHILOX_M0).i64x2ExtmulLowI32x4U();
            splat4(f.get(c0), PHILOX_M0).i64x2ExtmulHighI32x4U();
            f.i8x16Shuffle(words(1, 3, 5, 7)).set(h0);
            splat4(f.get(c2), PHILOX_M1).i64x2ExtmulLowI32x4U();
            splat4(f.get(c2), PHILOX_M1).i64x2ExtmulHighI32x4U();
            f.i8x16Shuffle(words(1, 3, 5, 7)).set(h1);
            splat4(f.get(c0), PHILOX_M0).i32x4Mul().set(lo0);
            f.get(h1).get(c1).v128Xor().get(a).v128Xor().set(c0);
            splat4(f.get(c2), PHILOX_M1).i32x4Mul().set(c1);
            f.get(h0).get(c3).v128Xor().get(b).v128Xor().set(c2);
            f.get(lo0).set(c3);
            if (r < 9) {
              splat4(f.get(a), PHILOX_W0).i32x4Add().set(a);
              splat4(f.get(b), PHILOX_W1).i32x4Add().set(b);
            }
          }
          // transpose: element vector l = (c0[l], c1[l], c2[l], c3[l]); reuse h0, h1, lo0, a as t0..t3
          f.get(c0)
            .get(c1)
            .i8x16Shuffle(words(0, 4, 1, 5))
            .set(h0);
          f.get(c2)
            .get(c3)
            .i8x16Shuffle(words(0, 4, 1, 5))
            .set(h1);
          f.get(c0)
            .get(c1)
            .i8x16Shuffle(words(2, 6, 3, 7))
            .set(lo0);
          f.get(c2)
            .get(c3)
            .i8x16Shuffle(words(2, 6, 3, 7))
            .set(a);
          const rows: [Local, Local, number[]][] = [
            [h0, h1, words(0, 1, 4, 5)],
            [h0, h1, words(2, 3, 6, 7)],
            [lo0, a, words(0, 1, 4, 5)],
            [lo0, a, words(2, 3, 6, 7)],
          ];
          rows.forEach(([p, q, lanes], l) => {
            // out[16g + 4l ..] = (word ≥ t) & (x·s)
            f.get(out).get(g).i32Const(64).i32Mul().i32Add();
            f.get(x)
              .get(g)
              .i32Const(64)
              .i32Mul()
              .i32Add()
              .v128Load({ offset: 16 * l });
            f.get(sv).f32x4Mul();
            f.get(p).get(q).i8x16Shuffle(lanes).get(tv).i32x4GeU();
            f.v128And().v128Store({ offset: 16 * l });
          });
        },
      );
    },
  );
}

function load(): DropoutModule | null {
  if (mod !== undefined) return mod;
  mod = null;
  if (!wasmSimdSupported()) return mod;
  try {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const mb = new ModuleBuilder();
    mb.importMemory({ module: "env", name: "memory", initialPages: 1 });
    buildDropoutModule(mb);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(mb.toBytes()), { env: { memory } });
    mod = { memory, run: inst.exports.dropout_f32 as DropoutModule["run"] };
  } catch {
    mod = null;
  }
  return mod;
}

/** Whether the WebAssembly SIMD pass is available (else `dropoutF32` runs the JavaScript pass). */
export function dropoutWasmAvailable(): boolean {
  return load() !== null;
}

/**
 * out = dropout of x under key (k0, k1) (the stream of `random/philox.ts`), scale = fround(1/(1 − rate)):
 * the SIMD pass over whole groups of 16 elements, JavaScript for the rest (or for all of it with `portable`).
 */
export function dropoutF32(x: Float32Array, out: Float32Array, k0: number, k1: number, rate: number, portable = false): void {
  const n = x.length;
  const scale = Math.fround(1 / (1 - rate));
  const t = dropThreshold(rate);
  const m = portable || t >= 2 ** 32 ? null : load();
  const groups = Math.floor(n / 16);
  if (!m || groups === 0) {
    dropoutInto(x, out, k0, k1, rate, scale);
    return;
  }
  const bytes = 2 * groups * 64;
  if (m.memory.buffer.byteLength < bytes) m.memory.grow(Math.ceil((bytes - m.memory.buffer.byteLength) / PAGE));
  const xs = new Float32Array(m.memory.buffer, 0, groups * 16);
  xs.set(x.subarray(0, groups * 16));
  m.run(0, groups * 64, groups, k0 | 0, k1 | 0, t | 0, scale);
  out.set(new Float32Array(m.memory.buffer, groups * 64, groups * 16));
  if (groups * 16 < n) dropoutInto(x, out, k0, k1, rate, scale, groups * 16, n);
}
