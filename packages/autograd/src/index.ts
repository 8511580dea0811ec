/**
 * @qkvflow/autograd — tensors, reverse- and forward-mode automatic differentiation, CPU backend.
 */
import "./methods.js";

export { Tensor, type TensorLike, type NestedArray, type ArrayData, type GradNode } from "./tensor.js";
export type { DType, TypedArray } from "./dtype.js";
export { MAX_TENSOR_ELEMENTS, broadcastShapes, sizeOf, stridesOf, type Shape } from "./shape.js";
export type {
  Backend,
  BackendPrimitives,
  FusedKernels,
  FusedKernelName,
  TensorInfo,
  UnaryOp,
  BinaryOp,
  ReduceOp,
} from "./backend/backend.js";
export { setBackend, getBackend, registerBackend, listBackends } from "./backend/registry.js";
export { CpuBackend } from "./backend/cpu/cpu-backend.js";
export { adamwUpdateArrays, adamwUpdateMany, type AdamWUpdateConstants, type AdamWUpdateItem } from "./backend/cpu/kernels/adamw.js";
export { tidy, keep } from "./tidy.js";

export { tensor, scalar, zeros, ones, full, zerosLike, onesLike, arange, linspace, eye, type CreateOptions } from "./ops/creation.js";
export {
  add,
  sub,
  mul,
  div,
  neg,
  pow,
  exp,
  log,
  log1p,
  sqrt,
  rsqrt,
  abs,
  sin,
  cos,
  tanh,
  sigmoid,
  relu,
  silu,
  square,
  reciprocal,
  sign,
  step,
  floor,
  isFinite,
  maximum,
  minimum,
  clamp,
  where,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
} from "./ops/elementwise.js";
export { sum, mean, max, min, variance, variance as var_, logsumexp, type ReduceOptions } from "./ops/reduce.js";
export { reshape, transpose, permute, mT, expandDims, squeeze, slice, concat, stack, split, cast, stopGradient } from "./ops/shape-ops.js";
export { broadcastTo, sumToShape } from "./ops/broadcast.js";
export { take, gather, scatterAdd } from "./ops/indexing.js";
export { matmul, matmulT, dot } from "./ops/matmul.js";
export {
  gelu,
  softmax,
  logSoftmax,
  softmaxCrossEntropy,
  crossEntropy,
  linearCrossEntropy,
  layerNorm,
  dropout,
  oneHot,
  causalMask,
  type CrossEntropyOptions,
} from "./ops/nn.js";
export {
  vjp,
  jvp,
  grad,
  valueAndGrad,
  jacobian,
  checkpoint,
  customVjp,
  noGrad,
  type GradOptions,
  type JacobianOptions,
} from "./autodiff/transforms.js";
export { vmap, jacfwd, jacrev, type AxisSpec } from "./transforms/vmap.js";
export { jit, type JitOptions, type Jitted } from "./transforms/jit.js";
export { treeFlatten, treeMap, treeZip, treeLeaves, type Tree } from "./tree.js";
export * as random from "./random.js";
export { Key } from "./random.js";
export { fromNdarray, toNdarray } from "./ndarray-interop.js";
export { DIFFERENTIABLE_OPS, type DifferentiableOp } from "./op-registry.js";
export * as linalg from "./linalg-ops.js";
export { qrRaw, qrPositive, eigvalsRaw, eigvalsBatchedRaw, symEigRaw } from "./linalg/index.js";
export {
  encodeSafetensors,
  decodeSafetensors,
  f16ToF32,
  bf16ToF32,
  f32ToF16,
  f32ToBf16,
  type RawTensor,
  type SafeDType,
  type SafetensorsContents,
} from "./io/safetensors.js";
export { saveSafetensors, loadSafetensors, tensorToRaw, tensorsToRaw, rawToTensor } from "./io/tensors.js";
