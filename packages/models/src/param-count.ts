/**
 * Parameter names, shapes and counts from a configuration alone (nothing is allocated).
 */
import { validateConfig, type ModelConfig, type ModelConfigInput } from "./config.js";
import { matchesAny } from "./module.js";

type Shapes = [string, number[]][];

function linear(out: Shapes, linears: [string, number, number][], path: string, i: number, o: number): void {
  out.push([`${path}.weight`, [i, o]], [`${path}.bias`, [o]]);
  linears.push([path, i, o]);
}

function norm(out: Shapes, path: string, E: number): void {
  out.push([`${path}.weight`, [E]], [`${path}.bias`, [E]]);
}

/** Every parameter name with its shape, in the order `parameters()` lists them (LoRA adapters included). */
export function parameterShapes(input: ModelConfig | ModelConfigInput): Record<string, number[]> {
  const c = validateConfig(input);
  const E = c.nEmbd;
  const out: Shapes = [];
  const linears: [string, number, number][] = [];
  out.push(["wte.weight", [c.vocabSize, E]], ["wpe.weight", [c.blockSize, E]]);
  if (c.kind === "gpt2" || c.kind === "discretized") {
    const [n1, n2] = c.kind === "gpt2" ? ["ln_1", "ln_2"] : ["ln_a", "ln_m"];
    for (let l = 0; l < c.nLayer; l++) {
      const p = `h.${l}`;
      norm(out, `${p}.${n1}`, E);
      linear(out, linears, `${p}.attn.c_attn`, E, 3 * E);
      linear(out, linears, `${p}.attn.c_proj`, E, E);
      norm(out, `${p}.${n2}`, E);
      linear(out, linears, `${p}.mlp.c_fc`, E, 4 * E);
      linear(out, linears, `${p}.mlp.c_proj`, 4 * E, E);
    }
  } else {
    const w = 2 * c.sinusoidalDim + 1,
      d = c.timeEmbedDim;
    const hyper = (p: string) => {
      linear(out, linears, `${p}.lin1`, w, d);
      linear(out, linears, `${p}.lin2`, d, d);
    };
    const tln = (p: string) => {
      out.push([`${p}.gamma`, [E, d]], [`${p}.beta`, [E, d]]);
      hyper(p);
    };
    const tlin = (p: string, i: number, o: number) => {
      out.push([`${p}.f_b`, [d, o]]);
      hyper(p);
      out.push([`${p}.f_W.weight`, [d, i, o]], [`${p}.f_W.bias`, [i, o]]);
    };
    tln("block.ln_a");
    tlin("block.attn.c_attn", E, 3 * E);
    tlin("block.attn.c_proj", E, E);
    tln("block.ln_m");
    tlin("block.mlp.c_fc", E, 4 * E);
    tlin("block.mlp.c_proj", 4 * E, E);
  }
  out.push(["ln_f.weight", [E]], ["ln_f.bias", [E]]);
  const result: Record<string, number[]> = {};
  for (const [n, s] of out) {
    result[n] = s;
    const lora = c.lora;
    if (lora && n.endsWith(".bias")) {
      const path = n.slice(0, -".bias".length);
      const l = linears.find(([p]) => p === path);
      if (l && matchesAny(path, lora.targets)) {
        result[`${path}.lora_A`] = [l[1], lora.rank];
        result[`${path}.lora_B`] = [lora.rank, l[2]];
      }
    }
  }
  return result;
}

/** Number of scalar parameters of a configuration, computed without allocating anything. */
export function countParameters(config: ModelConfig | ModelConfigInput): number {
  let n = 0;
  for (const s of Object.values(parameterShapes(config))) n += s.reduce((a, b) => a * b, 1);
  return n;
}
