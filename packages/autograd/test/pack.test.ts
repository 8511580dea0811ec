/**
 * The published package as a user gets it: `npm pack` of @qkvflow/autograd, installed into an empty folder.
 * The install must stay light (gpu.js is an optional peer dependency: not installed, no native module), the
 * main entry must compute gradients from ESM and CommonJS, and `@qkvflow/autograd/gpu` must say which package
 * to install; with gpu.js present it runs, and bundlers get a static import of gpu.js to resolve.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

/** Every file under `dir` (symbolic links are not followed). */
function filesUnder(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p));
    else if (entry.isFile()) out.push({ path: p, size: statSync(p).size });
  }
  return out;
}

/** Runs `node file` in `cwd` and parses the JSON line it prints. */
function runJson(cwd: string, file: string): unknown {
  const r = spawnSync(process.execPath, [file], { cwd, encoding: "utf8" });
  assert.equal(r.status, 0, `${file} exited with ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim());
}

const MISSING = "@qkvflow/autograd/gpu needs the package 'gpu.js', an optional peer dependency of @qkvflow/autograd that is not installed";

test("the packed @qkvflow/autograd installs light (no gpu.js, no native module) and works from ESM, CommonJS and bundlers", {
  timeout: 300_000,
}, async (t) => {
  execFileSync(npm, ["run", "build"], { cwd: pkgDir, stdio: "pipe" });
  const work = mkdtempSync(join(tmpdir(), "qkvflow-pack-"));
  try {
    const out = execFileSync(npm, ["pack", "--pack-destination", work], {
      cwd: pkgDir,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    const tgz = readdirSync(work).find((f) => f.endsWith(".tgz"));
    assert.ok(tgz, `npm pack produced no tarball: ${out}`);
    const app = join(work, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
    // Install scripts are allowed to run: nothing in the dependency tree may have one that builds native code.
    execFileSync(npm, ["install", "--no-audit", "--no-fund", "--prefer-offline", join(work, tgz)], { cwd: app, stdio: "pipe" });

    const nodeModules = join(app, "node_modules");
    const installed = filesUnder(nodeModules);
    const packages = installed.filter((f) => /node_modules[\\/](@[^\\/]+[\\/])?[^\\/@]+[\\/]package\.json$/.test(f.path.slice(app.length)));
    const bytes = installed.reduce((s, f) => s + f.size, 0);
    t.diagnostic(`installed: ${packages.length} packages, ${installed.length} files, ${(bytes / 1e6).toFixed(2)} MB`);
    for (const absent of ["gpu.js", "webgpu", "gl"]) assert.ok(!readdirSync(nodeModules).includes(absent), `${absent} was installed`);
    assert.deepEqual(
      installed.filter((f) => f.path.endsWith(".node")).map((f) => f.path),
      [],
      "a native module was installed",
    );
    assert.ok(bytes < 10e6, `the install takes ${bytes} bytes`);

    const expected = [0.5, 1.0].map((v) => Math.sin(v) + v * Math.cos(v));
    const gradient = `const g = grad((x) => sum(mul(sin(x), x)))(tensor([0.5, 1.0], { dtype: "float64" }));
console.log(JSON.stringify(Array.from(g.data())));`;
    writeFileSync(join(app, "esm.mjs"), `import { grad, tensor, sum, mul, sin } from "@qkvflow/autograd";\n${gradient}`);
    writeFileSync(join(app, "cjs.cjs"), `const { grad, tensor, sum, mul, sin } = require("@qkvflow/autograd");\n${gradient}`);
    for (const file of ["esm.mjs", "cjs.cjs"]) {
      const res = runJson(app, file) as number[];
      assert.equal(res.length, 2);
      res.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-12, `${file}: ${v} vs ${expected[i]}`));
    }

    // Without gpu.js: the gpu subpath fails on import, naming the package to install.
    const report = "console.log(JSON.stringify(r));";
    writeFileSync(
      join(app, "gpu-esm.mjs"),
      `let r;\ntry { await import("@qkvflow/autograd/gpu"); r = { ok: true }; } catch (e) { r = { ok: false, message: e.message }; }\n${report}`,
    );
    writeFileSync(
      join(app, "gpu-cjs.cjs"),
      `let r;\ntry { require("@qkvflow/autograd/gpu"); r = { ok: true }; } catch (e) { r = { ok: false, message: e.message }; }\n${report}`,
    );
    for (const file of ["gpu-esm.mjs", "gpu-cjs.cjs"]) {
      const r = runJson(app, file) as { ok: boolean; message?: string };
      assert.equal(r.ok, false, `${file}: importing @qkvflow/autograd/gpu succeeded without gpu.js`);
      assert.ok(r.message?.startsWith(MISSING) && r.message.includes("npm install gpu.js"), `${file}: ${r.message}`);
    }
    // A bundler (browser conditions) meets a static import of gpu.js and reports it by name.
    const bundle = (): Promise<unknown> =>
      build({
        stdin: { contents: `export { createGpuBackend } from "@qkvflow/autograd/gpu";`, resolveDir: app, loader: "js" },
        bundle: true,
        write: false,
        format: "esm",
        platform: "browser",
        // node-only modules reached through optional code paths (as in examples/browser/build.ts)
        external: ["node:*", "gl", "webgpu"],
        logLevel: "silent",
      });
    await assert.rejects(bundle(), (e: Error) => /Could not resolve "gpu\.js"/.test(e.message));

    // With gpu.js installed next to it (linked from this repository), the subpath loads and runs.
    const gpuJsDir = dirname(createRequire(import.meta.url).resolve("gpu.js/package.json"));
    symlinkSync(gpuJsDir, join(nodeModules, "gpu.js"), "junction");
    // The backend registered by the subpath is the one the main entry's ops use (one copy of the core).
    const run = `const b = useGpuBackend({ mode: "cpu" });
const x = tensor([[1, 2], [3, 4]]);
const y = matmul(x, x);
console.log(JSON.stringify({ mode: b.mode, current: getBackend() === b, on: y._backend === b, y: Array.from(y.data()) }));`;
    writeFileSync(
      join(app, "gpu-run.mjs"),
      `import { getBackend, matmul, tensor } from "@qkvflow/autograd";\nimport { useGpuBackend } from "@qkvflow/autograd/gpu";\n${run}`,
    );
    writeFileSync(
      join(app, "gpu-run.cjs"),
      `const { getBackend, matmul, tensor } = require("@qkvflow/autograd");\nconst { useGpuBackend } = require("@qkvflow/autograd/gpu");\n${run}`,
    );
    for (const file of ["gpu-run.mjs", "gpu-run.cjs"]) {
      const r = runJson(app, file);
      assert.deepEqual(r, { mode: "cpu", current: true, on: true, y: [7, 10, 15, 22] }, file);
    }
    const bundled = (await bundle()) as { outputFiles: { text: string }[] };
    assert.ok(bundled.outputFiles[0].text.includes("createGpuBackend"));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
