/**
 * gpu.js modes: which ones exist, which one a kernel actually runs on, and which ones this process can use.
 */
import { GPU, gpuJsExport } from "./gpujs.js";

/** The kernel classes gpu.js exports (looked up by name: not all of them are in its type declarations). */
const kernelClass = (name: string): unknown => gpuJsExport(name);

/** Modes the gpu backend accepts; `auto` picks the best available (headlessgl → webgl2 → webgl → webasm → cpu). */
export type GpuMode = "auto" | "headlessgl" | "webgl2" | "webgl" | "webgpu" | "webasm" | "cpu";

/** Modes a backend can end up running on (never `auto`). */
export type ResolvedGpuMode = Exclude<GpuMode, "auto">;

/** Every mode name accepted by `createGpuBackend`. */
export const GPU_MODES: readonly GpuMode[] = ["auto", "headlessgl", "webgl2", "webgl", "webgpu", "webasm", "cpu"];

/** Modes whose kernels run on a GL device and keep results in textures. */
export const GL_MODES: readonly ResolvedGpuMode[] = ["headlessgl", "webgl2", "webgl"];

/** The mode of a gpu.js kernel class (subclasses first: headless-gl extends the WebGL kernel). */
export function modeOfKernelClass(k: unknown): ResolvedGpuMode | "unknown" {
  if (k === kernelClass("HeadlessGLKernel")) return "headlessgl";
  if (k === kernelClass("WebGL2Kernel")) return "webgl2";
  if (k === kernelClass("WebGLKernel")) return "webgl";
  if (k === kernelClass("WebGPUKernel")) return "webgpu";
  if (k === kernelClass("WebAssemblyKernel")) return "webasm";
  if (k === kernelClass("CPUKernel")) return "cpu";
  return "unknown";
}

/** Whether gpu.js reports `mode` as usable in this process (webgpu: only the synchronous API check). */
export function isGpuModeSupported(mode: ResolvedGpuMode): boolean {
  try {
    switch (mode) {
      case "headlessgl":
        return GPU.isHeadlessGLSupported;
      case "webgl2":
        return GPU.isWebGL2Supported;
      case "webgl":
        return GPU.isWebGLSupported;
      case "webgpu":
        return GPU.isWebGPUSupported;
      case "webasm":
        return GPU.isWebAssemblySupported;
      case "cpu":
        return true;
    }
  } catch {
    return false;
  }
}

/** The modes gpu.js can run here, best first (what `auto` chooses from; webgpu is never chosen automatically). */
export function availableGpuModes(): ResolvedGpuMode[] {
  return (["headlessgl", "webgl2", "webgl", "webasm", "cpu"] as const).filter((m) => isGpuModeSupported(m));
}
