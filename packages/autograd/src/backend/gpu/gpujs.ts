/**
 * Where the gpu backend gets gpu.js from. gpu.js is an optional peer dependency of @qkvflow/autograd: only the
 * `@qkvflow/autograd/gpu` subpath needs it, and every module of the backend reaches it through this file.
 *
 * In the sources (tests, tsx, bundling from source) this is a static import. The published builds replace this
 * module with `gpujs-slot.ts`, which the subpath's entry fills: `gpu-node.ts` loads gpu.js with `require` and
 * names the package to install when it is missing; `gpu-bundler.ts` imports it statically for bundlers
 * (see tsup.config.ts).
 */
import type * as GpuJsModule from "gpu.js";
import * as gpujs from "gpu.js";

/** The gpu.js `GPU` class. */
export const GPU: typeof GpuJsModule.GPU = gpujs.GPU;
export type GPU = GpuJsModule.GPU;

/** An export of gpu.js looked up by name (some kernel classes are missing from its type declarations). */
export function gpuJsExport(name: string): unknown {
  return (gpujs as unknown as Record<string, unknown>)[name];
}
