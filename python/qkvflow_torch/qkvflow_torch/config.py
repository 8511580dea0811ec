"""Configurations: the training configuration files of qkvflow (`configs/*.json`) and the model configurations they
resolve to, with the same defaults, presets and validation rules as @qkvflow/train and @qkvflow/models.

A training configuration has sections `model` (a `preset` name plus overrides, or a full model configuration with
`kind`), `data`, `optimizer`, `train` and `finetune`; every key has a default. `resolve_model_section` turns the
`model` section into a complete model configuration (the JSON stored in a checkpoint's `qkvflow.config`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from typing import Any, Dict, List, Optional, Sequence

PAPER_EULER = "euler-right-time"
SOLVER_ALIASES = {"euler": PAPER_EULER}
KINDS = ("gpt2", "diffeqformer", "discretized")
_BASE_KEYS = [
    "kind",
    "vocabSize",
    "blockSize",
    "nEmbd",
    "nHead",
    "nLayer",
    "embdPdrop",
    "residPdrop",
    "layerNormEps",
    "initStd",
    "dtype",
    "gradientCheckpointing",
    "lora",
]
_KEYS = {
    "gpt2": _BASE_KEYS,
    "diffeqformer": _BASE_KEYS + ["timeEmbedDim", "sinusoidalDim", "solver"],
    "discretized": _BASE_KEYS + ["dt"],
}
_SOLVER_KEYS = ["method", "steps", "rtol", "atol", "maxSteps"]
_LORA_KEYS = ["rank", "alpha", "targets", "trainable", "initStd", "merged"]
LORA_DEFAULTS = {"rank": 8, "alpha": 16, "targets": ["*"], "trainable": [], "initStd": 0.02, "merged": False}


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what was expected."""


def _fail(what: str, got: Any, expected: str) -> None:
    raise ConfigError(f"validateConfig: {what} is {json.dumps(got)}; expected {expected}")


def _check_keys(where: str, obj: Dict[str, Any], valid: Sequence[str]) -> None:
    unknown = [k for k in obj if k not in valid]
    if unknown:
        s = "s" if len(unknown) > 1 else ""
        raise ConfigError(f"validateConfig: unknown key{s} {', '.join(repr(k) for k in unknown)} in {where}; valid keys are {', '.join(valid)}")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()


def _pos_int(name: str, v: Any) -> int:
    if not _is_int(v) or v <= 0:
        _fail(name, v, "a positive integer")
    return int(v)


def _prob(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        _fail(name, v, "a number in [0, 1)")
    return v


def _pos_num(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        _fail(name, v, "a finite positive number")
    return v


def _strings(name: str, v: Any) -> List[str]:
    if not isinstance(v, list) or any(not isinstance(s, str) or not s for s in v):
        _fail(name, v, "an array of non-empty strings")
    return list(v)


def validate_lora(v: Any) -> Dict[str, Any]:
    if not isinstance(v, dict):
        _fail("lora", v, "an object")
    _check_keys("lora", v, _LORA_KEYS)
    o = {**LORA_DEFAULTS, **v}
    init_std = o["initStd"]
    if isinstance(init_std, bool) or not isinstance(init_std, (int, float)) or not (init_std >= 0 and math.isfinite(init_std)):
        _fail("lora.initStd", init_std, "a finite number >= 0")
    if not isinstance(o["merged"], bool):
        _fail("lora.merged", o["merged"], "true or false")
    return {
        "rank": _pos_int("lora.rank", o["rank"]),
        "alpha": _pos_num("lora.alpha", o["alpha"]),
        "targets": _strings("lora.targets", o["targets"]),
        "trainable": _strings("lora.trainable", o["trainable"]),
        "initStd": init_std,
        "merged": o["merged"],
    }


def _validate_solver(v: Any) -> Dict[str, Any]:
    if not isinstance(v, dict):
        _fail("solver", v, f"an object such as {{ method: '{PAPER_EULER}' }}")
    _check_keys("solver", v, _SOLVER_KEYS)
    method = v.get("method", PAPER_EULER)
    if not isinstance(method, str) or not method:
        _fail("solver.method", method, f"a solver name such as '{PAPER_EULER}', 'rk4' or 'dopri5'")
    out: Dict[str, Any] = {"method": SOLVER_ALIASES.get(method, method)}
    if v.get("steps") is not None:
        out["steps"] = _pos_int("solver.steps", v["steps"])
    for k in ("rtol", "atol"):
        if v.get(k) is not None:
            out[k] = _pos_num(f"solver.{k}", v[k])
    if v.get("maxSteps") is not None:
        out["maxSteps"] = _pos_int("solver.maxSteps", v["maxSteps"])
    return out


def validate_model_config(inp: Any) -> Dict[str, Any]:
    """Checks a model configuration and fills defaults, as @qkvflow/models' validateConfig (same key order)."""
    if not isinstance(inp, dict):
        _fail("the configuration", inp, "an object")
    kind = inp.get("kind")
    if kind not in KINDS:
        _fail("kind", kind, f"one of {', '.join(KINDS)}")
    _check_keys(f"a '{kind}' configuration", inp, _KEYS[kind])
    n_embd = _pos_int("nEmbd", inp.get("nEmbd"))
    n_head = _pos_int("nHead", inp.get("nHead"))
    if n_embd % n_head:
        raise ConfigError(f"validateConfig: nEmbd {n_embd} is not divisible by nHead {n_head}; expected nEmbd = nHead · headDim")
    n_layer = _pos_int("nLayer", inp.get("nLayer"))
    dtype = inp.get("dtype", "float32")
    if dtype not in ("float32", "float64"):
        _fail("dtype", dtype, "'float32' or 'float64'")
    gc = inp.get("gradientCheckpointing", False)
    if not isinstance(gc, bool):
        _fail("gradientCheckpointing", gc, "true or false")
    out: Dict[str, Any] = {
        "kind": kind,
        "vocabSize": _pos_int("vocabSize", inp.get("vocabSize")),
        "blockSize": _pos_int("blockSize", inp.get("blockSize")),
        "nEmbd": n_embd,
        "nHead": n_head,
        "nLayer": n_layer,
        "embdPdrop": _prob("embdPdrop", inp.get("embdPdrop", 0)),
        "residPdrop": _prob("residPdrop", inp.get("residPdrop", 0)),
        "layerNormEps": _pos_num("layerNormEps", inp.get("layerNormEps", 1e-5)),
        "initStd": _pos_num("initStd", inp.get("initStd", 0.02)),
        "dtype": dtype,
        "gradientCheckpointing": gc,
    }
    if inp.get("lora") is not None:
        out["lora"] = validate_lora(inp["lora"])
    if kind == "gpt2":
        return out
    if kind == "discretized":
        out["dt"] = _pos_num("dt", inp.get("dt", 1 / n_layer))
        return out
    out["timeEmbedDim"] = _pos_int("timeEmbedDim", inp.get("timeEmbedDim", 100))
    out["sinusoidalDim"] = _pos_int("sinusoidalDim", inp.get("sinusoidalDim", 16))
    out["solver"] = _validate_solver(inp.get("solver", {"method": PAPER_EULER}))
    return out


def _gpt2(e: int, h: int, layers: int) -> Dict[str, Any]:
    return validate_model_config(
        {"kind": "gpt2", "vocabSize": 50257, "blockSize": 1024, "nEmbd": e, "nHead": h, "nLayer": layers, "embdPdrop": 0.1, "residPdrop": 0.1}
    )


def _ode(e: int, h: int, layers: int, d: int, s: int) -> Dict[str, Any]:
    return validate_model_config(
        {
            "kind": "diffeqformer",
            "vocabSize": 50257,
            "blockSize": 1024,
            "nEmbd": e,
            "nHead": h,
            "nLayer": layers,
            "timeEmbedDim": d,
            "sinusoidalDim": s,
            "embdPdrop": 0.1,
            "residPdrop": 0.1,
        }
    )


# The named model configurations of @qkvflow/models (a test compares this table with the TypeScript one).
PRESETS: Dict[str, Dict[str, Any]] = {
    "gpt2-small": _gpt2(768, 12, 12),
    "gpt2-medium": _gpt2(1024, 16, 24),
    "gpt2-large": _gpt2(1280, 20, 36),
    "gpt2-xl": _gpt2(1600, 25, 48),
    "diffeqformer-small": _ode(768, 12, 12, 20, 128),
    "diffeqformer-medium": _ode(1024, 16, 24, 96, 128),
    "diffeqformer-medium-wiki": _ode(1024, 16, 24, 48, 128),
    "diffeqformer-large": _ode(1280, 20, 36, 96, 128),
    "diffeqformer-finetune": _ode(1024, 16, 18, 100, 256),
    "gpt2-18": _gpt2(1024, 16, 18),
    "gpt2-tiny": validate_model_config(
        {"kind": "gpt2", "vocabSize": 50257, "blockSize": 128, "nEmbd": 128, "nHead": 4, "nLayer": 4, "embdPdrop": 0.1, "residPdrop": 0.1}
    ),
    "diffeqformer-tiny": validate_model_config(
        {
            "kind": "diffeqformer",
            "vocabSize": 50257,
            "blockSize": 128,
            "nEmbd": 128,
            "nHead": 4,
            "nLayer": 4,
            "timeEmbedDim": 8,
            "sinusoidalDim": 16,
            "embdPdrop": 0.1,
            "residPdrop": 0.1,
        }
    ),
    "gpt2-micro": validate_model_config({"kind": "gpt2", "vocabSize": 61, "blockSize": 16, "nEmbd": 16, "nHead": 2, "nLayer": 2}),
    "diffeqformer-micro": validate_model_config(
        {"kind": "diffeqformer", "vocabSize": 61, "blockSize": 16, "nEmbd": 16, "nHead": 2, "nLayer": 3, "timeEmbedDim": 4, "sinusoidalDim": 4}
    ),
}


def preset(name: str, overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A preset by name with fields overridden (a `solver` override is merged into the preset's solver)."""
    if name not in PRESETS:
        raise ConfigError(f"config: model.preset is {json.dumps(name)}; expected one of {', '.join(PRESETS)}")
    p = PRESETS[name]
    merged = {**copy.deepcopy(p), **(overrides or {})}
    if p["kind"] == "diffeqformer" and isinstance((overrides or {}).get("solver"), dict):
        merged["solver"] = {**p["solver"], **overrides["solver"]}
    return validate_model_config(merged)


def resolve_model_section(section: Dict[str, Any]) -> Dict[str, Any]:
    """The model configuration of a training configuration's `model` section."""
    rest = dict(section)
    name = rest.pop("preset", None)
    if name is not None:
        return preset(name, rest)
    return validate_model_config(rest)


def upgrade_model_config(stored: Any) -> Any:
    """A stored model configuration with former solver names replaced ('euler' → 'euler-right-time')."""
    if isinstance(stored, dict) and isinstance(stored.get("solver"), dict) and stored["solver"].get("method") in SOLVER_ALIASES:
        return {**stored, "solver": {**stored["solver"], "method": SOLVER_ALIASES[stored["solver"]["method"]]}}
    return stored


def default_decay_patterns(kind: str) -> List[str]:
    """Default weight-decay patterns per model kind (as @qkvflow/train)."""
    if kind == "diffeqformer":
        return ["wte\\.weight", "wpe\\.weight"]
    if kind == "gpt2":
        return [".*attn.*weight", ".*mlp.*weight", "wte\\.weight", "wpe\\.weight"]
    return [".*"]


# --- training configuration -------------------------------------------------------------------------------------

# Defaults of every key of the fixed sections (as CONFIG_SCHEMA of @qkvflow/train; a test compares them).
SECTION_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "data": {
        "dataset": "wikitext-103",
        "dataDir": None,
        "cacheDir": None,
        "download": False,
        "trainSplit": "train",
        "evalSplit": "validation",
        "splitFallback": True,
        "seqLen": 1024,
        "stride": None,
        "maxDocuments": None,
        "heldOutFraction": 0.1,
    },
    "optimizer": {
        "lr": 6e-4,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weightDecay": 0.1,
        "decayPatterns": None,
        "maxGradNorm": 1,
        "warmupRatio": 0.01,
        "minLrRatio": 0.1,
        "schedule": "cosine",
    },
    "train": {
        "steps": 10001,
        "batchSize": 256,
        "gradAccum": 1,
        "evalEvery": 200,
        "evalBatches": None,
        "evalBatchSize": None,
        "checkpointEvery": 1000,
        "keepCheckpoints": 2,
        "outDir": None,
        "progress": "auto",
    },
    "finetune": {
        "checkpoint": None,
        "layers": None,
        "mode": "full",
        "loraRank": 8,
        "loraAlpha": 16,
        "loraInitStd": 0.02,
        "loraTargets": ["*"],
        "loraTrainable": ["wte.weight", "wpe.weight"],
    },
}
_TOP_KEYS = ["name", "description", "seed", "model", "data", "optimizer", "train", "finetune"]


def validate_train_config(inp: Any) -> Dict[str, Any]:
    """Fills the defaults of a training configuration and checks the keys the PyTorch trainer relies on."""
    if not isinstance(inp, dict):
        raise ConfigError(f"config: the configuration is {json.dumps(inp)}; expected a JSON object with sections {', '.join(_TOP_KEYS)}")
    for k in inp:
        if k not in _TOP_KEYS:
            raise ConfigError(f"config: unknown key '{k}' in the configuration; valid keys are {', '.join(_TOP_KEYS)}")
    model = inp.get("model", {"preset": "diffeqformer-tiny"})
    if not isinstance(model, dict) or ("preset" not in model and "kind" not in model):
        raise ConfigError('config: model needs either "preset" (a preset name) or "kind" (gpt2, diffeqformer, discretized)')
    out: Dict[str, Any] = {
        "name": inp.get("name", "run"),
        "description": inp.get("description", ""),
        "seed": inp.get("seed", 0),
        "model": copy.deepcopy(model),
    }
    if not _is_int(out["seed"]) or not 0 <= out["seed"] <= 0xFFFFFFFF:
        raise ConfigError(f"config: seed is {json.dumps(out['seed'])}; expected an integer in [0, 4294967295]")
    for section, defaults in SECTION_DEFAULTS.items():
        given = inp.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"config: {section} is {json.dumps(given)}; expected an object with keys {', '.join(defaults)}")
        res = copy.deepcopy(defaults)
        for k, v in given.items():
            if k not in defaults:
                raise ConfigError(f"config: unknown key '{k}' in section '{section}'; valid keys are {', '.join(defaults)}")
            res[k] = v
        out[section] = res
    t = out["train"]
    for k in ("steps", "batchSize", "gradAccum"):
        if not _is_int(t[k]) or t[k] < 1:
            raise ConfigError(f"config: train.{k} is {json.dumps(t[k])}; expected an integer >= 1")
    if t["batchSize"] % t["gradAccum"]:
        raise ConfigError(
            f"config: train.batchSize {t['batchSize']} is not divisible by train.gradAccum {t['gradAccum']}; expected batchSize = gradAccum · micro-batch size"
        )
    o = out["optimizer"]
    if o["schedule"] not in ("cosine", "linear", "constant"):
        raise ConfigError(f"config: optimizer.schedule is {json.dumps(o['schedule'])}; expected one of 'cosine', 'linear', 'constant'")
    for p in o["decayPatterns"] or []:
        try:
            re.compile(p)
        except re.error as err:
            raise ConfigError(f"config: optimizer.decayPatterns entry '{p}' is not a valid regular expression ({err})") from None
    return out


def config_search_path() -> List[str]:
    """Folders searched for named configurations: $QKVFLOW_CONFIGS, ./configs, then the repository's configs/."""
    dirs = []
    env = os.environ.get("QKVFLOW_CONFIGS")
    if env:
        dirs.extend(d for d in env.split(os.pathsep) if d)
    dirs.append(os.path.join(os.getcwd(), "configs"))
    here = os.path.dirname(os.path.abspath(__file__))
    dirs.append(os.path.normpath(os.path.join(here, "..", "..", "..", "configs")))
    return list(dict.fromkeys(os.path.abspath(d) for d in dirs))


def parse_override(arg: str):
    """`section.key=value` → (path, value); the value is JSON when it parses, else the raw string."""
    eq = arg.find("=")
    if eq <= 0:
        raise ConfigError(f"config: override '{arg}' is malformed; expected key=value with a dotted key, e.g. train.steps=100")
    key, raw = arg[:eq].strip(), arg[eq + 1 :]
    try:
        value = json.loads(raw.strip())
    except json.JSONDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(raw: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    out = copy.deepcopy(raw)
    for o in overrides:
        path, value = parse_override(o)
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config: cannot set '{'.'.join(path)}': '{k}' is not an object")
        node[path[-1]] = value
    return out


def load_train_config(ref: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """A training configuration from a file path or a name in the configs folders, with `key=value` overrides."""
    path = ref if os.path.isfile(ref) else None
    if path is None:
        name = ref[:-5] if ref.endswith(".json") else ref
        for d in config_search_path():
            cand = os.path.join(d, name + ".json")
            if os.path.isfile(cand):
                path = cand
                break
    if path is None:
        raise ConfigError(f"config: '{ref}' is neither a file nor a configuration name in {', '.join(config_search_path())}")
    with open(path, "r", encoding="utf-8") as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config: {path} is not valid JSON ({err})") from None
    return validate_train_config(apply_overrides(raw, overrides))


def dump(files: Sequence[str]) -> Dict[str, Any]:
    """Presets, section defaults and the resolved model and training configuration of each file (for comparison with qkvflow)."""
    out: Dict[str, Any] = {"presets": PRESETS, "defaults": SECTION_DEFAULTS, "files": {}}
    for f in files:
        cfg = load_train_config(f)
        out["files"][os.path.basename(f)] = {"model": resolve_model_section(cfg["model"]), "config": cfg}
    return out

