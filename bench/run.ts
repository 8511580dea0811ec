/**
 * Runs every `bench/*.bench.ts` suite in turn (alphabetical order). Each suite exports
 * `run(filter?: string): Promise<void>` and prints its own table.
 *
 *   npx tsx bench/run.ts            # everything
 *   npx tsx bench/run.ts gemm       # suites whose file name contains "gemm" run in full;
 *                                   # other suites run only their cases whose names contain "gemm"
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

interface BenchModule {
  run?: (filter?: string) => Promise<void>;
}

async function main(): Promise<void> {
  const filter = process.argv[2];
  const here = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(here)
    .filter((f) => f.endsWith(".bench.ts"))
    .sort();
  let failed = 0;
  for (const file of files) {
    const name = file.replace(/\.bench\.ts$/, "");
    const wholeSuite = !filter || name.toLowerCase().includes(filter.toLowerCase());
    console.log(`\n## ${name}${wholeSuite ? "" : ` (cases matching "${filter}")`}\n`);
    try {
      const mod = (await import(pathToFileURL(join(here, file)).href)) as BenchModule;
      if (typeof mod.run !== "function") {
        console.log(`(${file} exports no run function; skipped)`);
        continue;
      }
      await mod.run(wholeSuite ? undefined : filter);
    } catch (e) {
      failed++;
      console.error(`${file} failed:`, e);
    }
  }
  if (failed > 0) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
