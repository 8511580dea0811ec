import { gemmBatched } from "./kernels/gemm.js";

/** GEMM entry point of the CPU backend (row-major, optional transposes, optional batching). */
export interface GemmCall<T extends Float32Array | Float64Array> {
  transA: boolean; transB: boolean; m: number; n: number; k: number;
  a: T; aOffset?: number; b: T; bOffset?: number; c: T; cOffset?: number;
  batch?: number; strideA?: number; strideB?: number; strideC?: number;
}

/** C = op(A)·op(B): WebAssembly SIMD (multi-threaded) for float32, plain TypeScript for float64. */
export function gemm<T extends Float32Array | Float64Array>(g: GemmCall<T>): void {
  gemmBatched({ ...g, batch: g.batch ?? 1, strideA: g.strideA ?? 0, strideB: g.strideB ?? 0, strideC: g.strideC ?? 0 });
}
