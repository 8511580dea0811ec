/**
 * Entry of `@qkvflow/autograd/gpu` outside Node (browser bundlers): imports the optional peer dependency gpu.js
 * statically, so that the bundler resolves it (and reports it by name when it is not installed).
 */
import * as gpujs from "gpu.js";
import { provideGpuJs } from "./backend/gpu/gpujs-slot.js";

provideGpuJs(gpujs);

export * from "./backend/gpu/index.js";
