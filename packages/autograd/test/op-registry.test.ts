/**
 * The list of differentiable ops is derived from the op modules (src/op-registry.ts). These tests make the
 * derivation complete: every function the package exports is either an op of those modules or comes from a
 * module that holds no ops, every op is exported under its own name, and the ops listed as not differentiable
 * really carry no gradient.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as ag from "../src/index.js";
import { DIFFERENTIABLE_OPS, NOT_DIFFERENTIABLE, OP_MODULES } from "../src/op-registry.js";
import * as registry from "../src/backend/registry.js";
import * as cpu from "../src/backend/cpu/cpu-backend.js";
import * as creation from "../src/ops/creation.js";
import * as transforms from "../src/autodiff/transforms.js";
import * as tidy from "../src/tidy.js";
import * as tree from "../src/tree.js";
import * as random from "../src/random.js";
import * as ndarray from "../src/ndarray-interop.js";
import * as linalg from "../src/linalg/index.js";
import * as safetensors from "../src/io/safetensors.js";
import * as tensorsIo from "../src/io/tensors.js";
import * as shape from "../src/shape.js";
import * as tensorMod from "../src/tensor.js";
import * as vmapMod from "../src/transforms/vmap.js";
import * as jitMod from "../src/transforms/jit.js";
import * as adamwKernels from "../src/backend/cpu/kernels/adamw.js";

/** Modules whose exports are API but not ops (constructors, transforms, backends, I/O, trees, host linalg). */
const NON_OP_MODULES = {
  registry,
  cpu,
  creation,
  transforms,
  tidy,
  tree,
  random,
  ndarray,
  linalg,
  safetensors,
  tensorsIo,
  shape,
  tensorMod,
  vmapMod,
  jitMod,
  adamwKernels,
};

const functionsOf = (mod: object): Map<unknown, string> =>
  new Map(
    Object.entries(mod)
      .filter(([, v]) => typeof v === "function")
      .map(([k, v]) => [v, k]),
  );

test("every function exported by the package is an op of the op modules or from a module without ops", () => {
  const ops = new Map<unknown, string>();
  for (const m of Object.values(OP_MODULES)) for (const [f, k] of functionsOf(m)) ops.set(f, k);
  const others = new Set<unknown>();
  for (const m of Object.values(NON_OP_MODULES)) for (const f of functionsOf(m).keys()) others.add(f);
  const unknown = Object.entries(ag)
    .filter(([, v]) => typeof v === "function" && !ops.has(v) && !others.has(v))
    .map(([k]) => k);
  assert.deepEqual(
    unknown,
    [],
    "exports from no known module: add an op module to OP_MODULES in src/op-registry.ts, or a module without ops to NON_OP_MODULES here",
  );
});

test("every op of the op modules is exported by the package under its own name", () => {
  const entries = Object.values(OP_MODULES).flatMap((m) => Object.entries(m).filter(([, v]) => typeof v === "function"));
  const missing = entries.filter(([k, f]) => (ag as Record<string, unknown>)[k] !== f).map(([k]) => k);
  assert.deepEqual(missing, []);
  const all = new Set(entries.map(([k]) => k));
  assert.equal(DIFFERENTIABLE_OPS.length + NOT_DIFFERENTIABLE.length, all.size, "each op is either differentiable or listed as not");
  for (const n of NOT_DIFFERENTIABLE) assert.ok(all.has(n), `${n} (listed as not differentiable) is not an op`);
  assert.ok(
    DIFFERENTIABLE_OPS.includes("linearCrossEntropy") && DIFFERENTIABLE_OPS.includes("gelu") && !DIFFERENTIABLE_OPS.includes("eq" as never),
  );
});

test("ops listed as not differentiable give outputs without a gradient node on tracked inputs", () => {
  const x = ag.tensor([-1.5, 0, 0.25, 2], { dtype: "float64" });
  const calls: Record<string, ((v: ag.Tensor) => ag.Tensor) | null> = {
    eq: (v) => ag.eq(v, v),
    ne: (v) => ag.ne(v, 0),
    lt: (v) => ag.lt(v, 0),
    le: (v) => ag.le(v, 0),
    gt: (v) => ag.gt(v, 0),
    ge: (v) => ag.ge(v, 0),
    sign: ag.sign,
    step: ag.step,
    floor: ag.floor,
    isFinite: ag.isFinite,
    stopGradient: ag.stopGradient,
    // no float input to track: integer indices, a size
    oneHot: null,
    causalMask: null,
  };
  assert.deepEqual(Object.keys(calls).sort(), [...NOT_DIFFERENTIABLE].sort());
  ag.vjp((v: ag.Tensor) => {
    for (const [name, f] of Object.entries(calls)) if (f) assert.equal(f(v)._node, undefined, `${name} recorded a gradient node`);
    const d = ag.mul(v, v);
    assert.notEqual(d._node, undefined, "a differentiable op records a node (the check above can fail)");
    return ag.sum(d);
  }, x);
});
