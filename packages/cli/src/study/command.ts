/**
 * `qkvflow study <name> [--size smoke|cpu|full] [--seeds N] [--out DIR] [--resume] [--data DIR]`: runs the
 * paper's experiments end to end and writes results.json, figures/*.svg and results.md into the output folder.
 * Finished training runs and analysis units are kept in the folder; with --resume they are reused and an
 * unfinished training run continues from its latest checkpoint, so an interrupted study finishes with the
 * results an uninterrupted one would have had (timings aside).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { loadRunData, validateTrainConfig, writeFileAtomicSync, type RunData } from "@qkvflow/train";
import { beyondMarkdown, runBeyond } from "./beyond.js";
import { depthMarkdown, runDepth } from "./depth.js";
import { lyapunovMarkdown, runLyapunov, runSpectra, spectraMarkdown } from "./dynamics.js";
import { mainMarkdown, runMain } from "./main-comparison.js";
import { StudyInterrupted, type StudyContext } from "./runner.js";
import { studySpec, STUDY_SIZES, type StudySpec } from "./spec.js";

/** The experiments, in the order `all` runs them. */
export const EXPERIMENTS = ["main", "spectra", "lyapunov", "depth", "beyond"] as const;
export type ExperimentName = (typeof EXPERIMENTS)[number];

const TITLES: Record<ExperimentName, string> = {
  main: "1. Main comparison: GPT-2 against DiffEqFormer (paper §2)",
  spectra: "2. Spectra over depth (paper §3.1)",
  lyapunov: "3. Lyapunov token sensitivity (paper §3.2)",
  depth: "4. Adaptive depth: discretise and fine-tune (paper §4)",
  beyond: "5. Beyond the paper: inference solvers and random training grids (paper §6)",
};

// biome-ignore lint/suspicious/noExplicitAny: each experiment has its own result type
type Runner = (ctx: StudyContext) => Promise<{ result: any; figures: Record<string, string> }>;
// biome-ignore lint/suspicious/noExplicitAny: see above
const RUNNERS: Record<ExperimentName, { run: Runner; markdown: (r: any) => string }> = {
  main: { run: runMain, markdown: mainMarkdown },
  spectra: { run: runSpectra, markdown: spectraMarkdown },
  lyapunov: { run: runLyapunov, markdown: lyapunovMarkdown },
  depth: { run: runDepth, markdown: depthMarkdown },
  beyond: { run: runBeyond, markdown: beyondMarkdown },
};

export const STUDY_USAGE = `usage: qkvflow study <${[...EXPERIMENTS, "all"].join("|")}> [options]

  --size S      ${STUDY_SIZES.join(" | ")} (default smoke): smoke checks the pipeline in about a minute,
                cpu is the size of docs/results.md (about an hour on 2 cores), full the paper-like configuration
  --seeds N     seeds of the main comparison (default: the size's)
  --out DIR     output folder (default runs/study-<size>)
  --resume      reuse the folder's finished runs and continue an unfinished one from its checkpoint
  --data DIR    folder holding wikitext-2-raw-v1/ and openwebtext-sample/ (default $QKVFLOW_SHARED_DATA,
                else ../shared/data beside the project)

Writes DIR/results.json, DIR/results.md and DIR/figures/*.svg (and DIR/runs/, DIR/cache/ for resuming).`;

/** Parsed study arguments. */
export interface StudyArgs {
  experiments: ExperimentName[];
  spec: StudySpec;
  out: string;
  resume: boolean;
  data: string;
}

function projectRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
}

/** Parses `study` arguments (throws an Error naming the problem). */
export function parseStudyArgs(argv: readonly string[]): StudyArgs | "help" {
  let name: string | undefined;
  let size = "smoke";
  let seeds: number | undefined;
  let out: string | undefined;
  let resume = false;
  let data = process.env.QKVFLOW_SHARED_DATA ?? path.join(projectRoot(), "..", "shared", "data");
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`study: ${a} needs a value`);
      return v;
    };
    if (a === "--help" || a === "-h") return "help";
    else if (a === "--size") size = next();
    else if (a === "--seeds") {
      const v = next();
      seeds = Number(v);
      if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`study: --seeds is '${v}'; expected an integer >= 1`);
    } else if (a === "--out") out = next();
    else if (a === "--resume") resume = true;
    else if (a === "--data") data = next();
    else if (a.startsWith("-")) throw new Error(`study: unknown option '${a}'; valid: --size, --seeds, --out, --resume, --data`);
    else if (name === undefined) name = a;
    else throw new Error(`study: unexpected argument '${a}'; give one experiment name`);
  }
  if (name === undefined) throw new Error(`study: no experiment given; expected one of ${[...EXPERIMENTS, "all"].join(", ")}`);
  if (name !== "all" && !(EXPERIMENTS as readonly string[]).includes(name))
    throw new Error(`study: unknown experiment '${name}'; expected one of ${[...EXPERIMENTS, "all"].join(", ")}`);
  const spec = studySpec(size, seeds);
  return {
    experiments: name === "all" ? [...EXPERIMENTS] : [name as ExperimentName],
    spec,
    out: path.resolve(out ?? path.join("runs", `study-${size}`)),
    resume,
    data: path.resolve(data),
  };
}

function lazy<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= f());
}

/** The context of a study (data loaded on first use). */
export function studyContext(a: StudyArgs, log: (m: string) => void): StudyContext {
  const dataDirs = {
    wikitext: path.join(a.data, "wikitext-2-raw-v1"),
    owt: path.join(a.data, "openwebtext-sample", "openwebtext_sample.txt"),
  };
  for (const [what, p] of Object.entries(dataDirs)) {
    if (!fs.existsSync(p))
      throw new Error(`study: ${what} data not found at ${p}; pass --data DIR (a folder with wikitext-2-raw-v1/ and openwebtext-sample/)`);
  }
  const load = (d: Record<string, unknown>): Promise<RunData> => loadRunData(validateTrainConfig({ data: d }).data, log);
  return {
    out: a.out,
    spec: a.spec,
    log,
    dataDirs,
    wiki: lazy(() => load({ dataset: "wikitext-2", dataDir: dataDirs.wikitext, splitFallback: false })),
    owt: lazy(() => load({ dataset: "text", dataDir: dataDirs.owt, evalSplit: "test", heldOutFraction: 0.1 })),
  };
}

/** What a study writes into results.json. */
export interface StudyResults {
  size: string;
  spec: StudySpec;
  experiments: Partial<Record<ExperimentName, unknown>>;
  figures: string[];
  timing: { seconds: Partial<Record<ExperimentName, number>> };
}

/** The results page (Markdown) of the experiments present in `r`. */
export function studyPage(r: StudyResults): string {
  const parts = [`# qkvflow study (size ${r.size})`, ""];
  for (const e of EXPERIMENTS) {
    const res = r.experiments[e];
    if (res === undefined) continue;
    parts.push(`## ${TITLES[e]}`, "", RUNNERS[e].markdown(res), "");
  }
  return `${parts.join("\n")}\n`;
}

/** Runs a study; returns the results written. */
export async function runStudy(a: StudyArgs, log: (m: string) => void = (m) => console.log(m)): Promise<StudyResults> {
  const resultsFile = path.join(a.out, "results.json");
  if (!a.resume && fs.existsSync(a.out) && fs.readdirSync(a.out).length > 0) {
    throw new Error(`study: ${a.out} is not empty; pass --resume to continue the study there, or choose another --out`);
  }
  fs.mkdirSync(path.join(a.out, "figures"), { recursive: true });
  const specFile = path.join(a.out, "spec.json");
  if (fs.existsSync(specFile)) {
    const before = fs.readFileSync(specFile, "utf8");
    if (before !== `${JSON.stringify(a.spec, null, 2)}\n`)
      throw new Error(`study: ${a.out} holds a study of another size or seed count (see its spec.json); choose another --out`);
  } else writeFileAtomicSync(specFile, `${JSON.stringify(a.spec, null, 2)}\n`);
  const prev: StudyResults = fs.existsSync(resultsFile)
    ? (JSON.parse(fs.readFileSync(resultsFile, "utf8")) as StudyResults)
    : { size: a.spec.size, spec: a.spec, experiments: {}, figures: [], timing: { seconds: {} } };
  const ctx = studyContext(a, log);
  for (const e of a.experiments) {
    log(`study ${a.spec.size}: ${TITLES[e]}`);
    const t0 = performance.now();
    const { result, figures } = await RUNNERS[e].run(ctx);
    for (const [name, svg] of Object.entries(figures)) {
      writeFileAtomicSync(path.join(a.out, "figures", `${name}.svg`), `${svg}\n`);
      if (!prev.figures.includes(`${name}.svg`)) prev.figures.push(`${name}.svg`);
    }
    prev.experiments[e] = result;
    prev.timing.seconds[e] = (performance.now() - t0) / 1000;
    fs.mkdirSync(path.join(a.out, e), { recursive: true });
    writeFileAtomicSync(path.join(a.out, e, "result.json"), `${JSON.stringify(result, null, 2)}\n`);
    writeFileAtomicSync(resultsFile, `${JSON.stringify(prev, null, 2)}\n`);
    writeFileAtomicSync(path.join(a.out, "results.md"), studyPage(prev));
  }
  log(`study: wrote ${resultsFile}, ${path.join(a.out, "results.md")} and ${prev.figures.length} figures`);
  return prev;
}

/** `qkvflow study …`; returns the exit code. */
export async function studyCommand(argv: readonly string[]): Promise<number> {
  let args: StudyArgs | "help";
  try {
    args = parseStudyArgs(argv);
  } catch (err) {
    console.error((err as Error).message);
    console.error(STUDY_USAGE);
    return 2;
  }
  if (args === "help") {
    console.log(STUDY_USAGE);
    return 0;
  }
  try {
    await runStudy(args);
    return 0;
  } catch (err) {
    if (err instanceof StudyInterrupted) {
      console.error(`study: ${err.message}: qkvflow study ${argv.filter((x) => x !== "--resume").join(" ")} --resume`);
      return 130;
    }
    console.error((err as Error).message);
    return 1;
  }
}
