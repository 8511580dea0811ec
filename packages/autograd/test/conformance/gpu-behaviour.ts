/**
 * Behaviour of the gpu backend beyond the kernel interface: the mode it reports, refusing float64, int32
 * carried as float32, results staying on the device until read, kernel caching, `dispose` and `tidy`.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it, mock } from "node:test";
import { add, cast, gelu, getBackend, matmul, mul, setBackend, softmax, sum, tensor, valueAndGrad, type Tensor } from "../../src/index.js";
import {
  createGpuBackend,
  GpuBuffer,
  keep,
  tidy,
  toBackend,
  useGpuBackend,
  type GpuBackend,
  type ResolvedGpuMode,
} from "../../src/backend/gpu/index.js";

/** Registers the gpu-backend behaviour tests for one gpu.js mode (which must be available). */
export function describeGpuBackend(mode: ResolvedGpuMode): void {
  describe(`gpu backend behaviour (${mode} mode)`, () => {
    const prev = getBackend();
    afterEach(() => {
      setBackend(prev);
    });
    let shared: GpuBackend | null = null;
    const be = (): GpuBackend => (shared ??= createGpuBackend({ mode, name: `gpu-behaviour-${mode}` }));

    it("reports the mode that runs", () => {
      const b = be();
      assert.equal(b.requestedMode, mode);
      assert.equal(b.mode, mode);
      assert.equal(b.fallbackReason, null);
      assert.equal(b.onDevice, mode === "headlessgl" || mode === "webgl2" || mode === "webgl");
    });

    it("refuses float64 with an error naming the dtype", () => {
      setBackend(be());
      assert.throws(() => tensor([1, 2], { dtype: "float64" }), /float64 is not supported/);
      const x = tensor([1, 2]);
      assert.throws(() => cast(x, "float64"), /gpu backend \(cast\): float64 is not supported/);
    });

    it("carries int32 as float32: exact below 2^24, rounded above", () => {
      setBackend(be());
      const x = tensor([16777215, -16777215, 16777217], { dtype: "int32" });
      assert.deepEqual(Array.from(x.data()), [16777215, -16777215, 16777217], "uploaded values read back from the host copy");
      const y = add(x, 0);
      assert.deepEqual(Array.from(y.data()), [16777215, -16777215, 16777216], "a kernel result above 2^24 is rounded to float32");
    });

    it("a kernel fed its own earlier output, then run at another size, gives that size's values", () => {
      // gpu.js may hand a kernel, as its next output, a texture of an earlier call's argument (sized for that
      // call): x·x at 66 elements, then at 12 elements, each fed back into the same mul kernel
      setBackend(createGpuBackend({ mode, name: `gpu-resize-${mode}` }));
      const big = tensor(Float32Array.from({ length: 66 }, (_, i) => 1 + i / 66));
      const b = mul(big, big);
      const c = mul(b, b);
      b.dispose();
      assert.ok(Math.abs(c.data()[65] - (1 + 65 / 66) ** 4) < 1e-4);
      const v = Float32Array.from({ length: 12 }, (_, i) => 0.5 + i / 12);
      const d = mul(tensor(v), tensor(v));
      const f = mul(d, d);
      Array.from(f.data()).forEach((got, i) => assert.ok(Math.abs(got - v[i] ** 4) < 1e-5, `[${i}] got ${got}, expected ${v[i] ** 4}`));
    });

    it("keeps results on the device until they are read", () => {
      const b = be();
      setBackend(b);
      const x = tensor([
        [1, 2],
        [3, 4],
      ]);
      const before = b.stats();
      const y = sum(gelu(matmul(x, x)));
      const mid = b.stats();
      assert.equal(mid.readbacks, before.readbacks, "no read-back while computing");
      assert.equal(mid.uploads, before.uploads, "no host→device upload while computing");
      const buf = y._buf as GpuBuffer;
      assert.equal(buf.host, null, "no host copy before read");
      if (b.onDevice) assert.ok(!((buf as unknown as { store: unknown }).store instanceof Float32Array), "the result is a texture");
      const ref = [
        [7, 10],
        [15, 22],
      ]
        .flat()
        .reduce((s, v) => s + 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))), 0);
      assert.ok(Math.abs(y.item() - ref) < 1e-4, `sum(gelu(x·x)) = ${y.item()}, expected ${ref}`);
      assert.equal(b.stats().readbacks, before.readbacks + 1, "one read-back for item()");
      y.item();
      assert.equal(b.stats().readbacks, before.readbacks + 1, "a second read uses the host copy");
    });

    it("compiles a kernel once per op structure and reuses it for every shape", () => {
      const b = be();
      setBackend(b);
      const x = tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      softmax(mul(x, x));
      const k1 = b.stats().kernels;
      const y = softmax(mul(tensor([1, 2, 3, 4, 5]), tensor([2, 2, 2, 2, 2])));
      assert.equal(b.stats().kernels, k1, "same structure, other shapes: no new kernel");
      const e = [2, 4, 6, 8, 10].map(Math.exp);
      const s = e.reduce((p, v) => p + v, 0);
      Array.from(y.data()).forEach((v, i) => assert.ok(Math.abs(v - e[i] / s) < 1e-6, `softmax[${i}] = ${v}, expected ${e[i] / s}`));
      const z = mul(x, tensor([[10], [100]]));
      assert.equal(b.stats().kernels, k1 + 1, "a broadcast (two merged axes) is a new structure");
      assert.deepEqual(Array.from(z.data()), [10, 20, 30, 400, 500, 600]);
      mul(tensor([[1], [2], [3]]), tensor([[1, 2]]));
      assert.equal(b.stats().kernels, k1 + 1, "another broadcast of the same structure reuses it");
    });

    it("dispose releases a buffer; using it afterwards throws", () => {
      const b = be();
      setBackend(b);
      const x = tensor([1, 2, 3]);
      const n = b.stats().buffers;
      x.dispose();
      x.dispose();
      assert.equal(b.stats().buffers, n - 1);
      assert.throws(() => add(x, 1), /was disposed/);
      assert.throws(() => x.data(), /was disposed/);
    });

    it("tidy releases intermediates and keeps the result (nested scopes, keep, errors)", () => {
      const b = be();
      setBackend(b);
      const w = tensor([
        [0.5, -1],
        [2, 0.25],
      ]);
      const x = tensor([
        [1, 2],
        [3, 4],
      ]);
      const n0 = b.stats().buffers;
      const out = tidy(() => sum(gelu(matmul(x, w)).mul(3)));
      assert.equal(b.stats().buffers, n0 + 1, "only the result survives");
      assert.ok(Number.isFinite(out.item()));
      const n1 = b.stats().buffers;
      const [loss, g] = tidy(() => valueAndGrad((v: Tensor) => sum(mul(gelu(matmul(x, v)), 2)))(w)) as [Tensor, Tensor];
      assert.equal(b.stats().buffers, n1 + 2, "value and gradient survive, the tape does not");
      assert.deepEqual(g.shape, [2, 2]);
      assert.ok(Number.isFinite(loss.item()));
      let kept: Tensor | null = null;
      const n2 = b.stats().buffers;
      const inner = tidy(() => {
        const a = tidy(() => add(x, 1).mul(2));
        kept = keep(add(a, 5));
        add(a, 7);
        return add(a, 1);
      });
      assert.equal(b.stats().buffers, n2 + 2, "the outer result and the kept tensor survive");
      assert.deepEqual(Array.from(inner.data()), [5, 7, 9, 11]);
      assert.deepEqual(Array.from(kept!.data()), [9, 11, 13, 15]);
      const n3 = b.stats().buffers;
      assert.throws(
        () =>
          tidy(() => {
            add(x, 1);
            throw new Error("boom");
          }),
        /boom/,
      );
      assert.equal(b.stats().buffers, n3, "a throwing scope releases what it made");
      assert.throws(() => tidy(() => Promise.resolve(1)), /tidy: the function returned a Promise/);
    });

    it("toBackend copies between backends; useGpuBackend makes a backend current", () => {
      const b = be();
      setBackend("cpu");
      const c = tensor([
        [1, 2],
        [3, 4],
      ]);
      const g = toBackend(c, b);
      assert.equal(g._backend, b);
      assert.deepEqual(g.toArray(), [
        [1, 2],
        [3, 4],
      ]);
      const u = useGpuBackend({ mode, name: `gpu-use-${mode}` });
      assert.equal(getBackend(), u);
      assert.equal(u.mode, mode);
      u.destroy();
    });

    it("an unavailable mode throws by default, or warns and reports what runs", () => {
      assert.throws(
        () => createGpuBackend({ mode: "webgpu" }),
        /requested mode 'webgpu' is not what runs: webgpu kernels are asynchronous/,
      );
      assert.throws(() => createGpuBackend({ mode: "webgl2" }), /requested mode 'webgl2' is not what runs/);
      const warn = mock.method(console, "warn", () => {});
      try {
        const w = createGpuBackend({ mode: "webgl2", onModeMismatch: "warn", name: "gpu-warn" });
        assert.notEqual(w.mode, "webgl2");
        assert.match(w.fallbackReason ?? "", /unsupported/);
        assert.equal(warn.mock.callCount(), 1);
        assert.match(String(warn.mock.calls[0].arguments[0]), /requested mode 'webgl2' is not what runs/);
        const s = createGpuBackend({ mode: "webgpu", onModeMismatch: "silent", name: "gpu-silent" });
        assert.notEqual(s.mode, "webgpu");
        assert.equal(warn.mock.callCount(), 1, "silent does not warn");
        setBackend(s);
        assert.deepEqual(Array.from(add(tensor([1, 2]), 1).data()), [2, 3], "the fallback mode computes");
      } finally {
        warn.mock.restore();
      }
    });
  });
}
