import { Tensor, type TensorLike } from "./tensor.js";
import * as ew from "./ops/elementwise.js";
import * as red from "./ops/reduce.js";
import * as so from "./ops/shape-ops.js";
import * as bc from "./ops/broadcast.js";
import * as ix from "./ops/indexing.js";
import * as mm from "./ops/matmul.js";
import * as nn from "./ops/nn.js";
import type { DType } from "./dtype.js";

type Axes = number | readonly number[] | null | undefined;

declare module "./tensor.js" {
  interface Tensor {
    add(b: TensorLike): Tensor;
    sub(b: TensorLike): Tensor;
    mul(b: TensorLike): Tensor;
    div(b: TensorLike): Tensor;
    pow(b: TensorLike): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    log1p(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    abs(): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    relu(): Tensor;
    gelu(): Tensor;
    silu(): Tensor;
    square(): Tensor;
    maximum(b: TensorLike): Tensor;
    minimum(b: TensorLike): Tensor;
    clamp(lo: TensorLike | null, hi: TensorLike | null): Tensor;
    eq(b: TensorLike): Tensor;
    ne(b: TensorLike): Tensor;
    lt(b: TensorLike): Tensor;
    le(b: TensorLike): Tensor;
    gt(b: TensorLike): Tensor;
    ge(b: TensorLike): Tensor;
    sum(axes?: Axes, opts?: red.ReduceOptions): Tensor;
    mean(axes?: Axes, opts?: red.ReduceOptions): Tensor;
    max(axes?: Axes, opts?: red.ReduceOptions): Tensor;
    min(axes?: Axes, opts?: red.ReduceOptions): Tensor;
    var(axes?: Axes, opts?: red.ReduceOptions & { ddof?: number }): Tensor;
    logsumexp(axes?: Axes, opts?: red.ReduceOptions): Tensor;
    matmul(b: Tensor): Tensor;
    reshape(shape: readonly number[]): Tensor;
    transpose(perm?: readonly number[]): Tensor;
    expandDims(axis: number): Tensor;
    squeeze(axes?: number | readonly number[]): Tensor;
    broadcastTo(shape: readonly number[]): Tensor;
    slice(begin: readonly number[], end?: readonly (number | null)[], step?: readonly number[]): Tensor;
    take(indices: Tensor, axis?: number): Tensor;
    cast(dtype: DType): Tensor;
    softmax(axis?: number): Tensor;
    logSoftmax(axis?: number): Tensor;
    /** Transpose of the last two axes. */
    readonly T: Tensor;
  }
}

const P = Tensor.prototype as unknown as Record<string, unknown>;
const methods: Record<string, (this: Tensor, ...a: never[]) => Tensor> = {
  add(b: TensorLike) {
    return ew.add(this, b);
  },
  sub(b: TensorLike) {
    return ew.sub(this, b);
  },
  mul(b: TensorLike) {
    return ew.mul(this, b);
  },
  div(b: TensorLike) {
    return ew.div(this, b);
  },
  pow(b: TensorLike) {
    return ew.pow(this, b);
  },
  neg() {
    return ew.neg(this);
  },
  exp() {
    return ew.exp(this);
  },
  log() {
    return ew.log(this);
  },
  log1p() {
    return ew.log1p(this);
  },
  sqrt() {
    return ew.sqrt(this);
  },
  rsqrt() {
    return ew.rsqrt(this);
  },
  abs() {
    return ew.abs(this);
  },
  sin() {
    return ew.sin(this);
  },
  cos() {
    return ew.cos(this);
  },
  tanh() {
    return ew.tanh(this);
  },
  sigmoid() {
    return ew.sigmoid(this);
  },
  relu() {
    return ew.relu(this);
  },
  gelu() {
    return nn.gelu(this);
  },
  silu() {
    return ew.silu(this);
  },
  square() {
    return ew.square(this);
  },
  maximum(b: TensorLike) {
    return ew.maximum(this, b);
  },
  minimum(b: TensorLike) {
    return ew.minimum(this, b);
  },
  clamp(lo: TensorLike | null, hi: TensorLike | null) {
    return ew.clamp(this, lo, hi);
  },
  eq(b: TensorLike) {
    return ew.eq(this, b);
  },
  ne(b: TensorLike) {
    return ew.ne(this, b);
  },
  lt(b: TensorLike) {
    return ew.lt(this, b);
  },
  le(b: TensorLike) {
    return ew.le(this, b);
  },
  gt(b: TensorLike) {
    return ew.gt(this, b);
  },
  ge(b: TensorLike) {
    return ew.ge(this, b);
  },
  sum(axes?: Axes, o?: red.ReduceOptions) {
    return red.sum(this, axes, o);
  },
  mean(axes?: Axes, o?: red.ReduceOptions) {
    return red.mean(this, axes, o);
  },
  max(axes?: Axes, o?: red.ReduceOptions) {
    return red.max(this, axes, o);
  },
  min(axes?: Axes, o?: red.ReduceOptions) {
    return red.min(this, axes, o);
  },
  var(axes?: Axes, o?: red.ReduceOptions & { ddof?: number }) {
    return red.variance(this, axes, o);
  },
  logsumexp(axes?: Axes, o?: red.ReduceOptions) {
    return red.logsumexp(this, axes, o);
  },
  matmul(b: Tensor) {
    return mm.matmul(this, b);
  },
  reshape(s: readonly number[]) {
    return so.reshape(this, s);
  },
  transpose(p?: readonly number[]) {
    return so.transpose(this, p);
  },
  expandDims(a: number) {
    return so.expandDims(this, a);
  },
  squeeze(a?: number | readonly number[]) {
    return so.squeeze(this, a);
  },
  broadcastTo(s: readonly number[]) {
    return bc.broadcastTo(this, s);
  },
  slice(b: readonly number[], e?: readonly (number | null)[], st?: readonly number[]) {
    return so.slice(this, b, e, st);
  },
  take(i: Tensor, a?: number) {
    return ix.take(this, i, a);
  },
  cast(d: DType) {
    return so.cast(this, d);
  },
  softmax(a?: number) {
    return nn.softmax(this, a);
  },
  logSoftmax(a?: number) {
    return nn.logSoftmax(this, a);
  },
};
for (const [k, f] of Object.entries(methods)) P[k] = f;
Object.defineProperty(Tensor.prototype, "T", {
  get(this: Tensor) {
    return so.mT(this);
  },
});
