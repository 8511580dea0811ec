/**
 * Running the PyTorch twin (python/qkvflow_torch) from node tests: where Python with torch is, whether it can run,
 * and a spawn helper. Tests that need it skip with the reason when torch is absent, or fail when
 * QKVFLOW_REQUIRE_TORCH=1 (CI, which installs Debian's python3-torch).
 */
import { spawn, spawnSync } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The folder holding the qkvflow_torch package (put on PYTHONPATH). */
export const torchPackageDir = path.join(repoRoot, "python", "qkvflow_torch");
/** The Python interpreter: $QKVFLOW_PYTHON, else Debian's /usr/bin/python3 (where python3-torch installs). */
export const python = process.env.QKVFLOW_PYTHON ?? "/usr/bin/python3";

let status: { ok: boolean; detail: string } | null = null;

/** Whether `python` imports torch and numpy: the torch version, or the reason it cannot. */
export function torchStatus(): { ok: boolean; detail: string } {
  if (status !== null) return status;
  const r = spawnSync(python, ["-c", "import torch, numpy; print(torch.__version__)"], { encoding: "utf8", timeout: 60_000 });
  if (r.error) status = { ok: false, detail: `${python} cannot be run (${r.error.message})` };
  else if (r.status !== 0)
    status = { ok: false, detail: `${python} has no torch/numpy (${(r.stderr || "").trim().split("\n").at(-1) ?? "import failed"})` };
  else status = { ok: true, detail: `torch ${r.stdout.trim()}` };
  return status;
}

/**
 * The `skip` option of a test that needs torch: false when torch is there, else the reason. With
 * QKVFLOW_REQUIRE_TORCH=1 a missing torch is an error instead of a skip.
 */
export function skipWithoutTorch(): false | string {
  const s = torchStatus();
  if (s.ok) return false;
  if (process.env.QKVFLOW_REQUIRE_TORCH === "1")
    throw new Error(`QKVFLOW_REQUIRE_TORCH=1 but ${s.detail}; install it with apt-get install python3-torch`);
  return `PyTorch is not available: ${s.detail} (apt-get install python3-torch, or set QKVFLOW_PYTHON)`;
}

/** Environment for the twin: its package on PYTHONPATH, one BLAS thread per process unless set. */
export function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONPATH: [torchPackageDir, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
    OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? "1",
    OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS ?? "1",
    ...extra,
  };
}

/** Runs a command to completion; resolves with its exit code and combined output. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], { cwd: opts.cwd ?? repoRoot, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, output }));
  });
}

/** Runs `python3 -m <module> args…` with the twin on the path; throws with the output when it fails. */
export async function runTwin(module: string, args: readonly string[], env: Record<string, string> = {}): Promise<string> {
  const r = await runCommand(python, ["-m", module, ...args], { env: pythonEnv(env) });
  if (r.code !== 0) throw new Error(`python3 -m ${module} ${args.join(" ")} exited with ${r.code}:\n${r.output}`);
  return r.output;
}
