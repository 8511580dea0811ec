/**
 * The backend conformance suite on the CPU backend (float32 kernels, plus float64 at float64 accuracy). The
 * float32 row kernels use a polynomial exp accurate to about 2 ulp, hence atol 3e-7 (2.5 ulp at 1).
 */
import { CpuBackend } from "../src/backend/cpu/cpu-backend.js";
import { runConformance } from "./conformance/suite.js";

runConformance("cpu", () => new CpuBackend(), { tol: { rtol: 2e-6, atol: 3e-7 }, float64: true });
