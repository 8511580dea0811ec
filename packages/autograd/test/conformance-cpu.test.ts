/** The backend conformance suite on the CPU backend (float32 kernels, plus float64 at float64 accuracy). */
import { CpuBackend } from "../src/backend/cpu/cpu-backend.js";
import { runConformance } from "./conformance/suite.js";

runConformance("cpu", () => new CpuBackend(), { tol: { rtol: 2e-6, atol: 1e-7 }, float64: true });
