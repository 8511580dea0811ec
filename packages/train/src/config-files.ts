/**
 * Configuration files: JSON files found by path or by name in a configs/ folder
 * ($QKVFLOW_CONFIGS, ./configs or the nearest parent folder's configs/, then folders the caller adds).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { applyOverrides, validateTrainConfig, type TrainConfig } from "./config.js";

/** A configuration file found by name. */
export interface ConfigFile {
  name: string;
  file: string;
  description: string;
}

/** Folders searched for named configurations: $QKVFLOW_CONFIGS, ./configs and its parents' configs/, then `extraDirs`. */
export function configSearchPath(extraDirs: readonly string[] = []): string[] {
  const out: string[] = [];
  const env = process.env.QKVFLOW_CONFIGS;
  if (env !== undefined && env !== "") out.push(path.resolve(env));
  let dir = process.cwd();
  for (;;) {
    out.push(path.join(dir, "configs"));
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  out.push(...extraDirs.map((d) => path.resolve(d)));
  return [...new Set(out)].filter((d) => fs.existsSync(d) && fs.statSync(d).isDirectory());
}

/** Configuration names (file names without .json) in the search path, with their descriptions. */
export function listConfigs(extraDirs: readonly string[] = []): ConfigFile[] {
  const seen = new Map<string, ConfigFile>();
  for (const dir of configSearchPath(extraDirs)) {
    for (const f of fs.readdirSync(dir).sort()) {
      if (!f.endsWith(".json")) continue;
      const name = f.slice(0, -5);
      if (seen.has(name)) continue;
      let description = "";
      try {
        const j = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as { description?: unknown };
        if (typeof j.description === "string") description = j.description;
      } catch {
        description = "(not valid JSON)";
      }
      seen.set(name, { name, file: path.join(dir, f), description });
    }
  }
  return [...seen.values()];
}

/** Reads a configuration file (path or name), applies overrides and validates it. */
export function loadConfig(ref: string, overrides: readonly string[] = [], extraDirs: readonly string[] = []): TrainConfig {
  let file = path.resolve(ref);
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    const name = ref.endsWith(".json") ? ref.slice(0, -5) : ref;
    const known = listConfigs(extraDirs);
    const hit = known.find((c) => c.name === name);
    if (hit === undefined) {
      throw new Error(
        `loadConfig: configuration '${ref}' is neither a file nor a known name; known names: ${known.map((c) => c.name).join(", ") || "(no configs/ folder found)"}`,
      );
    }
    file = hit.file;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    throw new Error(`loadConfig: configuration ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw new Error(`loadConfig: configuration ${file} must hold a JSON object`);
  try {
    return validateTrainConfig(applyOverrides(raw as Record<string, unknown>, overrides));
  } catch (err) {
    throw new Error(`${(err as Error).message} (in ${file})`);
  }
}
