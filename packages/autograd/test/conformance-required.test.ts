/**
 * The backend conformance suite on a backend that implements only the required primitives (delegating them to
 * the CPU backend): every fused kernel runs as its composite in the op layer and must meet the same references
 * at the CPU backend's tolerances, float64 included.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { FUSED_KERNELS, ownFusedKernels } from "../src/ops/fused.js";
import { layerNorm, setBackend, softmax, tensor } from "../src/index.js";
import { RequiredOnlyBackend } from "./conformance/required-backend.js";
import { runConformance } from "./conformance/suite.js";

runConformance("required primitives only (fused ops as composites)", () => new RequiredOnlyBackend(), {
  tol: { rtol: 2e-6, atol: 3e-7 },
  float64: true,
});

it("the required-only backend has no fused kernel, and fused ops run on its primitives", () => {
  const be = new RequiredOnlyBackend("required-only-check");
  assert.deepEqual(ownFusedKernels(be), []);
  assert.equal(FUSED_KERNELS.length, 10);
  setBackend(be);
  try {
    const x = tensor([
      [1, 2, 3],
      [0, -1, 4],
    ]);
    const y = layerNorm(softmax(x), null, null);
    assert.equal(y._backend, be);
    assert.ok((be.calls.get("reduce") ?? 0) >= 3 && (be.calls.get("unary") ?? 0) >= 2, `primitive calls: ${[...be.calls].join(", ")}`);
  } finally {
    setBackend("cpu");
  }
});
