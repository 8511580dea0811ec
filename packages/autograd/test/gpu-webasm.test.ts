/**
 * The backend conformance suite and gpu-backend behaviour on gpu.js's `webasm` mode (kernels compiled to
 * WebAssembly; what `auto` picks in Node without headless GL). Always available in Node.
 */
import { runConformance } from "./conformance/suite.js";
import { createGpuBackend } from "../src/backend/gpu/index.js";
import { describeGpuBackend } from "./conformance/gpu-behaviour.js";

runConformance("gpu (gpu.js webasm mode)", () => createGpuBackend({ mode: "webasm", name: "gpu-webasm" }));
describeGpuBackend("webasm");
