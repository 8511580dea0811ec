/**
 * The gpu backend of @qkvflow/autograd: the Backend kernels as gpu.js kernels (GL textures on headlessgl /
 * webgl2 / webgl, or gpu.js's cpu and webasm modes), plus scoped release of device memory.
 */
import type { Backend } from "../backend.js";
import { setBackend } from "../registry.js";
import { Tensor } from "../../tensor.js";
import { createGpuBackend, GpuBackend, type GpuBackendOptions } from "./gpu-backend.js";

export {
  createGpuBackend,
  GpuBackend,
  GpuBuffer,
  type GpuBackendOptions,
  type GpuBackendStats,
  type ModeMismatchPolicy,
} from "./gpu-backend.js";
export { availableGpuModes, isGpuModeSupported, GPU_MODES, type GpuMode, type ResolvedGpuMode } from "./modes.js";
export { tidy, keep } from "../../tidy.js";

/** Creates a gpu backend, registers it (under `opts.name`, default `gpu`) and makes it the current backend. */
export function useGpuBackend(opts: GpuBackendOptions = {}): GpuBackend {
  const b = createGpuBackend(opts);
  setBackend(b);
  return b;
}

/** A copy of `x` on another backend (host round trip; no gradient flows through it). */
export function toBackend(x: Tensor, backend: Backend): Tensor {
  if (x._backend === backend) return x;
  const src = x.data();
  return new Tensor(backend.fromArray(src.slice(), x.dtype), x.shape, x.dtype, backend);
}
