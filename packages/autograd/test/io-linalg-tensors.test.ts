import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ag from "../src/index.js";
import { loadSafetensorsFile, saveSafetensorsFile } from "../src/node.js";

test("tensor-level safetensors round trip is bit-exact for every dtype", () => {
  const tensors = {
    a: ag.tensor(new Float32Array([1.5, -0, NaN, 3e-39]), { shape: [2, 2] }),
    b: ag.tensor(new Float64Array([Math.PI, -1e300])),
    c: ag.tensor(new Int32Array([-7, 2 ** 31 - 1])),
    d: ag.gt(ag.tensor([1, -1, 2]), 0),
  };
  const { tensors: back, metadata } = ag.loadSafetensors(ag.saveSafetensors(tensors, { note: "x" }));
  assert.equal(metadata.note, "x");
  for (const [k, t] of Object.entries(tensors)) {
    const u = back[k];
    assert.equal(u.dtype, t.dtype);
    assert.deepEqual(u.shape, t.shape);
    assert.deepEqual(
      new Uint8Array(u.data().buffer, u.data().byteOffset, u.data().byteLength),
      new Uint8Array(t.data().buffer, t.data().byteOffset, t.data().byteLength),
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "qkvflow-st-"));
  try {
    saveSafetensorsFile(join(dir, "m.safetensors"), tensors);
    const f = loadSafetensorsFile(join(dir, "m.safetensors"));
    assert.deepEqual(Array.from(f.tensors.c.data()), [-7, 2 ** 31 - 1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("linalg.qr and linalg.eigvals on tensors", () => {
  const a = ag.tensor(
    [
      [2, 1],
      [1, 3],
      [0, 1],
    ],
    { dtype: "float64" },
  );
  const { q, r } = ag.linalg.qr(a, { positive: true });
  assert.deepEqual(q.shape, [3, 2]);
  const qr = ag.matmul(q, r).data();
  Array.from(a.data()).forEach((v, i) => assert.ok(Math.abs(v - qr[i]) < 1e-12));
  assert.ok(r.data()[0] > 0 && r.data()[3] > 0);
  // rotation by θ scaled by 2: eigenvalues 2e^{±iθ}
  const th = 0.3;
  const rot = ag.tensor(
    [
      [2 * Math.cos(th), -2 * Math.sin(th)],
      [2 * Math.sin(th), 2 * Math.cos(th)],
    ],
    { dtype: "float64" },
  );
  const { re, im } = ag.linalg.eigvals(rot);
  assert.ok(Math.abs(re.data()[0] - 2 * Math.cos(th)) < 1e-12 && Math.abs(im.data()[0] - 2 * Math.sin(th)) < 1e-12);
  assert.ok(Math.abs(im.data()[1] + 2 * Math.sin(th)) < 1e-12);
  const { values } = ag.linalg.symEig(
    ag.tensor(
      [
        [2, 1],
        [1, 2],
      ],
      { dtype: "float64" },
    ),
  );
  assert.deepEqual(
    Array.from(values.data()).map((v) => Math.round(v * 1e9) / 1e9),
    [1, 3],
  );
});
