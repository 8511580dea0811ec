/**
 * The published builds' stand-in for `gpujs.ts` (swapped in by tsup.config.ts): the same exports, filled by the
 * entry of `@qkvflow/autograd/gpu` before any backend is created (`gpu-node.ts` or `gpu-bundler.ts`).
 */
import type * as GpuJsModule from "gpu.js";

let loaded: Record<string, unknown> | undefined;

/** The gpu.js `GPU` class (set by `provideGpuJs`; modules importing it see the update). */
export let GPU: typeof GpuJsModule.GPU;
export type GPU = GpuJsModule.GPU;

/** Installs the loaded gpu.js module. */
export function provideGpuJs(mod: typeof GpuJsModule): void {
  loaded = mod as unknown as Record<string, unknown>;
  GPU = mod.GPU;
}

/** An export of gpu.js looked up by name (some kernel classes are missing from its type declarations). */
export function gpuJsExport(name: string): unknown {
  if (loaded === undefined) throw new Error("gpu backend: gpu.js was not loaded; import the backend from '@qkvflow/autograd/gpu'");
  return loaded[name];
}
