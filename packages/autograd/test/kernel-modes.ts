/** Shared by the kernel tests: run a check with the SIMD kernels on a given thread count, or the portable ones. */
import os from "node:os";
import { forcePortableKernels, setNumThreads } from "../src/backend/cpu/kernels/gemm.js";

/** Hardware threads of this machine (thread counts above it are capped). */
export const HW = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;

/** Runs `fn` with portable kernels forced or not and `threads` threads, then restores the defaults. */
export function withKernelMode<T>(mode: { portable: boolean; threads: number }, fn: () => T): T {
  forcePortableKernels(mode.portable);
  setNumThreads(Math.min(mode.threads, HW));
  try {
    return fn();
  } finally {
    forcePortableKernels(false);
    setNumThreads(HW);
  }
}
