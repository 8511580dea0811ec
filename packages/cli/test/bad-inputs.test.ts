/**
 * The bad-input table of docs/bad-inputs.md, generated here: each case runs through the CLI (`main`) or the
 * public API, and the test checks its exit status and message. The table in the docs must equal what this test
 * produces; `QKVFLOW_WRITE_DOCS=1 npm test -- bad-inputs` rewrites it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as ag from "@qkvflow/autograd";
import { createModel, discretize, encodeModelFile, validateConfig, type DiffEqFormer } from "@qkvflow/models";
import { main } from "../src/cli.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const DOC = path.join(root, "docs", "bad-inputs.md");

/** Runs main() capturing console output and stderr writes. */
async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const saved = { log: console.log, error: console.error, write: process.stderr.write.bind(process.stderr) };
  let out = "";
  let err = "";
  console.log = (...a: unknown[]) => void (out += `${a.join(" ")}\n`);
  console.error = (...a: unknown[]) => void (err += `${a.join(" ")}\n`);
  process.stderr.write = ((c: string | Uint8Array) => {
    err += String(c);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(argv), out, err };
  } finally {
    console.log = saved.log;
    console.error = saved.error;
    process.stderr.write = saved.write;
  }
}

interface Row {
  what: string;
  how: string;
  code: string;
  message: string;
}
const rows: Row[] = [];
let scratch = "";

/** Shortens paths in a message for the table. */
function clean(msg: string): string {
  return msg.split(scratch).join("…").replace(/\s+/g, " ").replace(/\|/g, "\\|").trim();
}

async function viaCli(what: string, argv: string[], code: number, re: RegExp, pick: "err" | "out" = "err"): Promise<void> {
  const r = await cli(argv);
  const text = pick === "err" ? r.err : r.out;
  assert.equal(r.code, code, `${what}: exit ${r.code}\n${r.err}`);
  const m = re.exec(text);
  assert.ok(m !== null, `${what}: ${re} not in\n${text}`);
  rows.push({ what, how: `\`qkvflow ${argv.map((a) => clean(a)).join(" ")}\``, code: String(code), message: clean(m[0]) });
}

function viaApi(what: string, how: string, f: () => unknown, re: RegExp): void {
  let msg = "";
  try {
    f();
  } catch (e) {
    assert.equal((e as Error).constructor, Error, `${what}: raw ${(e as Error).constructor.name}`);
    msg = (e as Error).message;
  }
  assert.match(msg, re, what);
  rows.push({ what, how: `\`${how}\``, code: "Error", message: clean(msg) });
}

const TEXT = "The quick brown fox jumps over the lazy dog, again and again, while the cat sleeps in the sun.\n".repeat(30);

function writeConfig(dir: string, dataFile: string, steps: number): string {
  const file = path.join(dir, "cfg.json");
  fs.writeFileSync(
    file,
    JSON.stringify({
      name: "bad-inputs",
      model: { kind: "gpt2", vocabSize: 50257, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 1 },
      data: { dataset: "text", dataDir: dataFile, cacheDir: path.join(dir, "cache"), seqLen: 16 },
      optimizer: { lr: 0.001, warmupRatio: 0.25 },
      train: { steps, batchSize: 2, checkpointEvery: 2, keepCheckpoints: 3, evalEvery: 0, evalBatches: 1, progress: "none" },
    }),
  );
  return file;
}

test("bad inputs: every case gives a clear message and exit status; docs/bad-inputs.md lists them", { timeout: 240_000 }, async () => {
  scratch = tmpDir("qkvflow-bad-");
  const good = path.join(scratch, "good.txt");
  fs.writeFileSync(good, TEXT);
  const cfg = writeConfig(scratch, good, 4);
  const base = path.join(scratch, "run");
  const first = await cli(["train", "--config", cfg, "--out", base]);
  assert.equal(first.code, 0, first.err);
  const copy = (name: string): string => {
    const d = path.join(scratch, name);
    fs.cpSync(base, d, { recursive: true });
    return d;
  };
  const ck = (run: string, step: number, f: string) => path.join(run, "checkpoints", `step-0000000${step}`, f);

  // silently wrong before: text data that is not UTF-8
  const bin = path.join(scratch, "data.bin");
  fs.writeFileSync(
    bin,
    Uint8Array.from({ length: 3000 }, (_, i) => (i * 7919 + 13) % 256),
  );
  const latin1 = path.join(scratch, "latin1.txt");
  fs.writeFileSync(latin1, Buffer.from(`${TEXT}Café au lait\n`, "latin1"));
  const utf16 = path.join(scratch, "utf16.txt");
  fs.writeFileSync(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(TEXT, "utf16le")]));
  for (const [what, file, re] of [
    ["binary file as text data", bin, /\S*data\.bin (is not valid UTF-8|has a NUL byte)[^;]*/],
    ["Latin-1 file as text data", latin1, /\S*latin1\.txt is not valid UTF-8: byte 0xE9 at byte offset \d+/],
    ["UTF-16 file as text data", utf16, /\S*utf16\.txt is not valid UTF-8: byte 0xFF at byte offset 0/],
  ] as const) {
    await viaCli(what, ["train", "--config", cfg, "--data", file, "--out", path.join(scratch, `o-${path.basename(file)}`)], 1, re);
  }
  const wt = path.join(scratch, "wikitext-2");
  fs.mkdirSync(wt);
  for (const s of ["train", "valid", "test"])
    fs.writeFileSync(path.join(wt, `wiki.${s}.raw`), s === "valid" ? Buffer.from("\u0000\u0001binary") : " = A = \n text .\n");
  await viaCli(
    "WikiText folder with binary wiki.*.raw",
    ["train", "--config", cfg, "--set", 'data.dataset="wikitext-2"', "--data", wt, "--out", path.join(scratch, "o-wt")],
    1,
    /\S*wiki\.valid\.raw has a NUL byte at byte offset 0/,
  );
  viaApi(
    "arithmetic on bool masks",
    "ag.add(mask, mask)",
    () => {
      const m = ag.gt(ag.tensor([1, 2]), 1.5);
      return ag.add(m, m);
    },
    /^add: both operands are bool masks; arithmetic on bool is refused/,
  );

  // checkpoints whose parts disagree
  const r9999 = copy("r9999");
  const st = JSON.parse(fs.readFileSync(ck(r9999, 4, "state.json"), "utf8")) as Record<string, unknown>;
  fs.writeFileSync(ck(r9999, 4, "state.json"), JSON.stringify({ ...st, step: 9999 }));
  await viaCli(
    "checkpoint whose state.json says step 9999",
    ["train", "--resume", r9999],
    1,
    /the latest checkpoint .* is damaged: .*says step 9999, but the folder is step-00000004 \(step 4\)[^.]*\./,
  );
  const rOpt = copy("ropt");
  fs.copyFileSync(ck(rOpt, 2, "optimizer.safetensors"), ck(rOpt, 4, "optimizer.safetensors"));
  await viaCli(
    "optimizer moments from another step",
    ["train", "--resume", rOpt],
    1,
    /holds the optimiser state after 2 updates, but \S+ says step 4/,
  );

  // safetensors headers
  const model = createModel(
    validateConfig({ kind: "gpt2", vocabSize: 50257, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 1 }),
    ag.random.key(0),
  );
  const good8 = encodeModelFile(model.parameters(), model.config);
  const hlen = new DataView(good8.buffer).getUint32(0, true);
  const header = new TextDecoder().decode(good8.subarray(8, 8 + hlen));
  const withHeader = (h: string): Uint8Array => {
    const b = new TextEncoder().encode(h.trimEnd());
    const len = Math.ceil(b.length / 8) * 8;
    const out = new Uint8Array(8 + len + good8.length - 8 - hlen).fill(0x20, 8, 8 + len);
    new DataView(out.buffer).setUint32(0, len, true);
    out.set(b, 8);
    out.set(good8.subarray(8 + hlen), 8 + len);
    return out;
  };
  const dup = path.join(scratch, "dup.safetensors");
  fs.writeFileSync(dup, withHeader(header.replace(/"ln_f\.bias"/, '"ln_f.weight"')));
  await viaCli(
    "safetensors header with a duplicated key",
    ["generate", "--checkpoint", dup, "--prompt", "Hi"],
    1,
    /decodeSafetensors: the header has the key 'ln_f\.weight' twice[^\n]*/,
  );
  const proto = path.join(scratch, "proto.safetensors");
  fs.writeFileSync(proto, withHeader(header.replace(/"ln_f\.bias"/, '"__proto__"')));
  await viaCli(
    "tensor named __proto__",
    ["generate", "--checkpoint", proto, "--prompt", "Hi"],
    1,
    /decodeSafetensors: a tensor is named '__proto__'[^\n]*/,
  );

  // resume stranding
  const rTrunc = copy("rtrunc");
  fs.truncateSync(ck(rTrunc, 4, "model.safetensors"), 500);
  const cfgBefore = fs.readFileSync(path.join(rTrunc, "config.json"), "utf8");
  await viaCli(
    "truncated file in the latest checkpoint",
    ["train", "--resume", rTrunc, "--set", "train.evalEvery=1"],
    1,
    /cannot resume: the latest checkpoint .*model\.safetensors: decodeSafetensors: .* The newest intact checkpoint is \S+ \(step 2\)[\s\S]*--resume-fallback/,
  );
  assert.equal(fs.readFileSync(path.join(rTrunc, "config.json"), "utf8"), cfgBefore, "a failed resume rewrote config.json");
  const rMiss = copy("rmiss");
  fs.rmSync(ck(rMiss, 4, "optimizer.safetensors"));
  await viaCli(
    "missing file in the latest checkpoint",
    ["train", "--resume", rMiss],
    1,
    /the latest checkpoint \S+ is damaged: \S+ lacks optimizer\.safetensors[\s\S]*?\(step 2\)/,
  );
  await viaCli(
    "… and continuing from the intact one",
    ["train", "--resume", rMiss, "--resume-fallback"],
    0,
    /resume: WARNING: continuing from the newest intact checkpoint \S+ \(step 2\)[^\n]*/,
    "out",
  );
  const rSteps = copy("rsteps");
  await viaCli(
    "resume with a different --steps",
    ["train", "--resume", rSteps, "--steps", "8"],
    1,
    /resuming with a different learning-rate schedule \(train\.steps 4 → 8\)[\s\S]*--change-schedule/,
  );
  await viaCli(
    "… applied on request",
    ["train", "--resume", rSteps, "--steps", "8", "--change-schedule"],
    0,
    /resume: schedule changed on request \(train\.steps 4 → 8\)[^\n]*/,
    "out",
  );
  await viaCli(
    "--change-schedule without --resume",
    ["train", "--config", cfg, "--change-schedule"],
    2,
    /--resume-fallback and --change-schedule only apply with --resume/,
  );

  await viaCli(
    "warmupRatio given as a step count (Levanter style)",
    ["train", "--config", cfg, "--set", "optimizer.warmupRatio=50", "--out", path.join(scratch, "o-warm")],
    2,
    /config: optimizer\.warmupRatio is 50; expected a finite number >= 0 and <= 1 \(it is a fraction of train\.steps[^)]*\)/,
  );

  // raw errors before
  const big = path.join(scratch, "big.safetensors");
  fs.writeFileSync(big, encodeModelFile(model.parameters(), { ...model.config, blockSize: 1e9 }));
  await viaCli(
    "model file whose config claims blockSize 1e9",
    ["generate", "--checkpoint", big, "--prompt", "Hi"],
    1,
    /the stored model configuration has blockSize 1000000000, but tensor 'wpe\.weight' has shape \[16, 8\]; expected blockSize 16/,
  );
  viaApi(
    "non-tensor operand",
    "ag.add(t, null)",
    () => ag.add(ag.tensor([1]), null as unknown as ag.Tensor),
    /the second operand is null; expected a Tensor or a number/,
  );
  viaApi("huge shape", "ag.zeros([1e6, 1e6])", () => ag.zeros([1e6, 1e6]), /more than the limit of 2147483647 elements per tensor/);
  viaApi(
    "state dict that is not an object",
    "model.loadStateDict(null)",
    () => model.loadStateDict(null as never),
    /the state dict is null; expected an object/,
  );
  viaApi(
    "discretize a model without depth time",
    "discretize(gpt2Model, 4)",
    () => discretize(model as unknown as DiffEqFormer, 4),
    /only a DiffEqFormer/,
  );
  await viaCli(
    "--out under an unwritable special folder",
    ["train", "--config", cfg, "--out", "/proc/qkvflow/run"],
    1,
    /cannot use '\/proc\/qkvflow\/run' as the output folder: creating '\/proc\/qkvflow' failed \(ENOENT\)/,
  );

  // waiting / misleading before
  const evalRun = copy("reval");
  await viaCli(
    "eval on part of a split",
    ["eval", "--checkpoint", evalRun],
    0,
    /over \d+ of [\d,]+ tokens \(\d+% of the split; --all for all of it\)/,
    "out",
  );
  await viaCli(
    "generate with a huge --max-tokens",
    ["generate", "--checkpoint", evalRun, "--prompt", "The", "--max-tokens", "100000"],
    0,
    /--max-tokens 100000 is more than fits in the model's context \(blockSize 16 − 1 prompt tokens = 15\); generating 15/,
  );
  // a run whose latest.json names a checkpoint without its model file (a write that stopped half way): eval and
  // generate read the newest complete one, and say so
  const torn = copy("rtorn");
  const tornRoot = path.join(torn, "checkpoints");
  const complete = fs
    .readdirSync(tornRoot)
    .filter((d) => d.startsWith("step-"))
    .sort()
    .at(-1)!;
  fs.cpSync(path.join(tornRoot, complete), path.join(tornRoot, "step-99999999"), { recursive: true });
  fs.rmSync(path.join(tornRoot, "step-99999999", "model.safetensors"));
  fs.writeFileSync(path.join(tornRoot, "latest.json"), JSON.stringify({ step: 99999999, dir: "step-99999999" }));
  await viaCli(
    "eval of a run whose latest checkpoint is incomplete",
    ["eval", "--checkpoint", torn],
    0,
    /eval: note: \S*latest\.json names step-99999999, which is incomplete \(no model\.safetensors\); using step-\d+, the newest complete one/,
  );
  await viaCli(
    "generate from a run whose latest checkpoint is incomplete",
    ["generate", "--checkpoint", torn, "--prompt", "The", "--max-tokens", "2"],
    0,
    /generate: note: \S*latest\.json names step-99999999, which is incomplete \(no model\.safetensors\); using step-\d+, the newest complete one/,
  );
  const hfDir = path.join(scratch, "hf");
  fs.mkdirSync(hfDir);
  const hfT: Record<string, ag.Tensor> = {};
  for (const [n, t] of Object.entries(model.parameters())) hfT[`transformer.${n}`] = t;
  fs.writeFileSync(path.join(hfDir, "model.safetensors"), ag.encodeSafetensors(ag.tensorsToRaw(hfT), { format: "pt" }));
  fs.writeFileSync(path.join(hfDir, "config.json"), JSON.stringify({ model_type: "gpt2", n_head: 2, n_embd: 8 }));
  await viaCli(
    "Hugging Face GPT-2 file given to generate",
    ["generate", "--checkpoint", path.join(hfDir, "model.safetensors"), "--prompt", "The", "--max-tokens", "2"],
    0,
    /^The.*/,
    "out",
  );
  await viaCli("analyze usage error", ["analyze", "--checkpoint", evalRun], 2, /analyze: no --out folder given/);
  await viaCli(
    "analyze without inputs (the README's line)",
    ["analyze", "--checkpoint", evalRun, "--out", path.join(scratch, "an"), "--ffn-units", "4", "--max-tokens", "4"],
    0,
    /analyze: no --text \/ --corpus \/ --ids given; analysing \d+ windows of 16 tokens spread over the 'validation' split[^\n]*/,
  );

  const table = [
    "| Bad input | Command | Exit | Message (paths shortened to …) |",
    "|---|---|---|---|",
    ...rows.map((r) => `| ${r.what} | ${r.how} | ${r.code} | ${r.message.length > 400 ? `${r.message.slice(0, 400)} …` : r.message} |`),
  ].join("\n");
  const begin = "<!-- bad-inputs table: generated by packages/cli/test/bad-inputs.test.ts -->";
  const end = "<!-- end of generated table -->";
  const doc = fs.readFileSync(DOC, "utf8");
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  assert.ok(i >= 0 && j > i, "docs/bad-inputs.md lacks the table markers");
  const next = `${doc.slice(0, i + begin.length)}\n${table}\n${doc.slice(j)}`;
  if (process.env.QKVFLOW_WRITE_DOCS === "1") fs.writeFileSync(DOC, next);
  else assert.equal(doc, next, "docs/bad-inputs.md is out of date; run QKVFLOW_WRITE_DOCS=1 npm test -- bad-inputs");
});
