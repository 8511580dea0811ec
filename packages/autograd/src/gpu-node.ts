/**
 * Entry of `@qkvflow/autograd/gpu` for Node (ESM and CommonJS builds): loads the optional peer dependency gpu.js
 * and, when it is not installed, fails with an error that names the package to install.
 */
import { createRequire } from "node:module";
import type * as GpuJsModule from "gpu.js";
import { provideGpuJs } from "./backend/gpu/gpujs-slot.js";

/** Loads gpu.js from where @qkvflow/autograd is installed. */
function loadGpuJs(): typeof GpuJsModule {
  const require = createRequire(import.meta.url);
  try {
    return require("gpu.js") as typeof GpuJsModule;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // Only gpu.js itself missing is reported as such; a broken installation of gpu.js keeps its own error.
    if (err.code === "MODULE_NOT_FOUND" && /Cannot find module 'gpu\.js'/.test(err.message)) {
      throw new Error(
        "@qkvflow/autograd/gpu needs the package 'gpu.js', an optional peer dependency of @qkvflow/autograd that is not installed. " +
          "Install it next to @qkvflow/autograd: npm install gpu.js",
        { cause: e },
      );
    }
    throw e;
  }
}

provideGpuJs(loadGpuJs());

export * from "./backend/gpu/index.js";
