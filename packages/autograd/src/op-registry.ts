/**
 * The differentiable ops, derived from the exports of the op modules: every exported function of these modules
 * is an op, and an op is differentiable unless listed in `NOT_DIFFERENTIABLE`. A new op is therefore counted
 * (and must get a gradient property test) as soon as it is exported; the test op-registry.test.ts also fails when
 * the package exports a function that is neither from these modules nor from a known non-op module.
 */
import * as broadcast from "./ops/broadcast.js";
import * as elementwise from "./ops/elementwise.js";
import * as indexing from "./ops/indexing.js";
import * as matmul from "./ops/matmul.js";
import * as nn from "./ops/nn.js";
import * as reduce from "./ops/reduce.js";
import * as shapeOps from "./ops/shape-ops.js";

/** Every op module (each exports only ops, plus types). */
export const OP_MODULES = { broadcast, elementwise, indexing, matmul, nn, reduce, shapeOps } as const;

type Ops = typeof broadcast & typeof elementwise & typeof indexing & typeof matmul & typeof nn & typeof reduce & typeof shapeOps;
/** Name of an exported op. */
export type OpName = { [K in keyof Ops]: Ops[K] extends (...args: never[]) => unknown ? K : never }[keyof Ops];

/** Ops without a gradient: masks and comparisons, integer-valued results, stop-gradient, constants. */
export const NOT_DIFFERENTIABLE = [
  "eq",
  "ne",
  "lt",
  "le",
  "gt",
  "ge",
  "sign",
  "step",
  "floor",
  "isFinite",
  "stopGradient",
  "oneHot",
  "causalMask",
] as const satisfies readonly OpName[];

/** Name of an exported differentiable op. */
export type DifferentiableOp = Exclude<OpName, (typeof NOT_DIFFERENTIABLE)[number]>;

function opNames(): OpName[] {
  const names = new Set<string>();
  for (const mod of Object.values(OP_MODULES)) {
    for (const [k, v] of Object.entries(mod)) if (typeof v === "function") names.add(k);
  }
  return [...names].sort() as OpName[];
}

/**
 * Every differentiable op exported by the package. The property-test suite checks that each name here has a
 * gradient property test (VJP and JVP against finite differences, and VJP/JVP consistency).
 */
export const DIFFERENTIABLE_OPS: readonly DifferentiableOp[] = opNames().filter(
  (n): n is DifferentiableOp => !(NOT_DIFFERENTIABLE as readonly string[]).includes(n),
);
