/**
 * The backend conformance suite on the gpu backend in gpu.js's `cpu` mode (always available in Node: the
 * generated kernels run as JavaScript), plus the gpu backend's own behaviour: mode reporting, float64
 * refusal, disposal and `tidy`, kernel caching, and results staying on the device until read.
 */
import { runConformance } from "./conformance/suite.js";
import { createGpuBackend } from "../src/backend/gpu/index.js";
import { describeGpuBackend } from "./conformance/gpu-behaviour.js";

runConformance("gpu (gpu.js cpu mode)", () => createGpuBackend({ mode: "cpu", name: "gpu-cpu" }));
describeGpuBackend("cpu");
