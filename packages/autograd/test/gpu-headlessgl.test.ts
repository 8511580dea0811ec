/**
 * The backend conformance suite and gpu-backend behaviour on gpu.js's `headlessgl` mode: real GLSL kernels
 * on float textures through the native `gl` module (ANGLE over Mesa's software rasteriser under Xvfb).
 * Runs only when `gl` loads (built by .ci/gpu-setup.sh); an X display is started when DISPLAY is unset.
 * With QKVFLOW_REQUIRE_HEADLESSGL=1 a missing `gl` module or GL context is a test failure, not a skip.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { GPU } from "gpu.js";
import { runConformance } from "./conformance/suite.js";
import { describeGpuBackend } from "./conformance/gpu-behaviour.js";
import { ensureDisplay, glModuleStatus } from "./conformance/headless-display.js";
import { createGpuBackend, type GpuBackend } from "../src/backend/gpu/index.js";

const required = process.env.QKVFLOW_REQUIRE_HEADLESSGL === "1";
// Mesa's softpipe compiles shaders about 4x faster than llvmpipe, and shader compilation (one per kernel and
// shape) dominates these tiny tests; set GALLIUM_DRIVER to choose another driver.
process.env.GALLIUM_DRIVER ??= "softpipe";
const gl = glModuleStatus();
const display = gl.ok ? await ensureDisplay() : null;
const supported = gl.ok && GPU.isHeadlessGLSupported;
const why = !gl.ok
  ? `the native 'gl' module does not load (${gl.error}); build it with .ci/gpu-setup.sh`
  : !display
    ? "no X display: DISPLAY is unset and Xvfb could not be started"
    : "gl loaded but could not open a WebGL context";

after(() => display?.stop());

if (!supported) {
  if (required) {
    it("headless GL is available (QKVFLOW_REQUIRE_HEADLESSGL=1)", () => {
      assert.fail(`HEADLESS GL REQUIRED BUT UNAVAILABLE: ${why}`);
    });
  } else {
    describe("gpu backend on headlessgl", { skip: `headless GL unavailable: ${why}` }, () => {});
  }
} else {
  runConformance("gpu (gpu.js headlessgl)", () => createGpuBackend({ mode: "headlessgl", name: "gpu-headlessgl" }), {
    teardown: (b) => (b as GpuBackend).destroy(),
  });
  describeGpuBackend("headlessgl");
}
