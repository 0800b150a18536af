# Mutation fuzzing of attn-compile --spec: kernel specs as JSON
# (docs/kernel-spec.md), the input attn.jit and attn.bundles hand the compiler.
#
# From a seed, mutates the valid specs of Inputs/specs.json plus one spec per
# family written here (attention_grad, and dense attention with a bias, FP8, a
# length range and the persistent schedule): each input takes one to four
# mutations of one or several specs -- a key deleted, a key's value replaced
# (0, -1, 1, 2^31, 2^63 - 1, -2^63, 1e308, 1.5, true, null, "", "runtime", an
# unknown word, [], {}, nested arrays, a "prefer" object), an integer key
# nudged to its neighbours or to a power of two, an unknown key added, "op" or
# "version" changed, the spec wrapped in an array or given as a bare value --
# and is written to a file for
# `attn-compile --spec FILE -o DIR --chip=CHIP` (sm_80 or sm_90a; now and then
# another chip) with now and then other options (--kernel, block sizes,
# --specialize-values, --length-alternatives=false, ...), under a timeout.
#
# A run is fine when it exits 0 and every manifest it wrote passes attn.gpu's
# validate_manifest (what the launchers trust), or when it exits 1 with an
# "error:" located at the spec's file (or attn-compile's message about the
# whole input: an empty array, the chip, an option). Anything else fails: a signal, "Stack
# dump", "LLVM ERROR", "PLEASE submit a bug report", an assertion, another exit
# code, exit 1 without such an error, a timeout, or a manifest Python refuses.
# Failing inputs are kept under --out with the command that reproduces them;
# the output ends with "N inputs, M failures".
#
# One RUN line: 120 inputs, about 1 min on 2 idle cores (a spec that compiles
# takes 0.1-0.5 s). A longer campaign: --seed N --count 3000.
# REQUIRES: cuda-toolkit, numpy
# RUN: rm -rf %t && mkdir -p %t
# RUN: %numpy_python %s --attn-compile attn-compile --seed 1 --count 120 --jobs 2 --out %t

import argparse
import concurrent.futures
import copy
import json
import os
import random
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

EXTRA_SPECS = [
    {"op": "attention_grad", "dtype": "bf16", "head_dim": 128, "mask": "causal",
     "deterministic": False},
    {"op": "attention", "dtype": "f16", "head_dim": 64, "bias": True, "bias_dtype": "f32",
     "bias_broadcast": [True, False, False, False], "lse": True},
    {"op": "attention", "dtype": "f8e4m3", "out_dtype": "bf16", "descale": "head",
     "head_dim": 128, "mask": "causal"},
    {"op": "attention", "dtype": "bf16", "head_dim": 128, "mask": "none", "kernel": "wgmma",
     "block_kv": 176, "prefer": {"Sk": [8192, None]}},
    {"op": "attention", "dtype": "bf16", "head_dim": 64, "mask": "causal", "persistent": True},
]

INTS = [0, -1, 1, 2, 15, 16, 17, 63, 64, 96, 100, 127, 128, 176, 192, 255, 256, 257, 512,
        576, 1024, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, -2**63]
VALUES = INTS + [1e308, -1e308, 1.5, 0.0, -0.0, True, False, None, "", "runtime", "x",
                 "bf16", "f8e4m3", "causal", "window", "wgmma", [], {}, [1, 2], [[1]],
                 {"Sk": [0, None]}, {"Sq": [5, 3]}, {"Sk": "x"}, [True, False, True, True]]
CHIPS = ["sm_80", "sm_90a"] * 9 + ["sm_90", "sm_70", "sm_100a"]
# attn-compile's options besides the chip, each taken now and then.
OPTIONS = [["--kernel=wgmma"], ["--kernel=mma"], ["--kernel=baseline"],
           ["--require-tensor-cores"], ["--block-q=64"], ["--block-kv=176"], ["--block-kv=32"],
           ["--block-kv=0"], ["--block-q=96"], ["--specialize-values"],
           ["--length-alternatives=false"], ["--tensor-maps=global"], ["--opt-level=0"],
           ["--persistent"]]
BAD = re.compile(r"Stack dump|LLVM ERROR|PLEASE submit a bug report|Assertion|"
                 r"UNREACHABLE|Segmentation|Aborted")


def mutate_spec(rng, spec):
    spec = copy.deepcopy(spec)
    keys = list(spec)
    kind = rng.randrange(7)
    if kind == 0 and keys:
        del spec[rng.choice(keys)]
    elif kind == 1 and keys:
        spec[rng.choice(keys)] = copy.deepcopy(rng.choice(VALUES))
    elif kind == 2:
        ints = [k for k, v in spec.items() if isinstance(v, int) and not isinstance(v, bool)]
        if ints:
            k = rng.choice(ints)
            spec[k] = rng.choice([spec[k] - 1, spec[k] + 1, spec[k] * 2, spec[k] // 2,
                                  -spec[k], 1 << rng.randrange(64)])
    elif kind == 3:
        spec[rng.choice(["prefer", "block_q", "block_kv", "kernel", "scale", "softcap",
                         "window_left", "chunk", "page_size", "persistent", "zzz"])] = \
            copy.deepcopy(rng.choice(VALUES))
    elif kind == 4:
        spec["op"] = rng.choice(["attention", "attention_grad", "paged_attention", "nsa",
                                 "gated_delta_rule", "lightning_indexer",
                                 "sparse_attention", "softmax", 7])
    elif kind == 5:
        spec["version"] = rng.choice([0, 1, 2, 3, -1, "2", None])
    else:
        spec["mask"] = rng.choice(["none", "causal", "window", "sliding", None])
        if spec["mask"] == "window":
            spec["window_left"], spec["window_right"] = (rng.choice(INTS + ["runtime"]),
                                                         rng.choice(INTS + ["runtime"]))
    return spec


def make_input(rng, seeds):
    specs = [rng.choice(seeds) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(specs))
        specs[i] = mutate_spec(rng, specs[i])
    shape = rng.randrange(10)
    if shape == 0:
        return json.dumps(rng.choice(VALUES))
    if shape == 1:
        return json.dumps(specs)[:-rng.randint(1, 5)]  # truncated
    return json.dumps(specs if len(specs) > 1 or shape == 2 else specs[0])


def check(opts, n, text, chip, options):
    """None if the run is fine, else why not."""
    from attn import gpu

    work = tempfile.mkdtemp(prefix=f"spec{n}.", dir=opts.out)
    path = os.path.join(work, "spec.json")
    with open(path, "w") as f:
        f.write(text)
    out = os.path.join(work, "out")
    argv = [opts.attn_compile, "--spec", path, "-o", out, f"--chip={chip}", *options]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=opts.timeout)
    except subprocess.TimeoutExpired:
        return argv, f"timeout after {opts.timeout} s"
    err = r.stdout + r.stderr
    if BAD.search(err) or r.returncode < 0:
        return argv, f"crash (exit {r.returncode}): {err[-2000:]}"
    if r.returncode == 1:
        # attn-compile's own messages about the whole input (an empty array,
        # the chip) name no line.
        if f"{path}:1:1: error:" not in err and not re.search(
                r"attn-compile: (unsupported chip|no attention found in |--)", err):
            return argv, f"exit 1 without a located error: {err[-2000:]}"
    elif r.returncode == 0:
        for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
            if name.endswith(".json"):
                try:
                    with open(os.path.join(out, name)) as f:
                        gpu.validate_manifest(json.load(f), os.path.join(out, name))
                except ValueError as e:
                    return argv, f"a manifest Python refuses: {e}"
    else:
        return argv, f"exit {r.returncode}: {err[-2000:]}"
    subprocess.run(["rm", "-rf", work])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attn-compile", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=120)
    ap.add_argument("--only", type=int, default=None, help="regenerate and run input N only")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--out", default=None)
    opts = ap.parse_args()
    opts.out = os.path.abspath(opts.out or tempfile.mkdtemp(prefix="fuzz_specs."))
    os.makedirs(opts.out, exist_ok=True)
    with open(os.path.join(HERE, "Inputs", "specs.json")) as f:
        seeds = json.load(f) + EXTRA_SPECS
    inputs = []
    for n in range(opts.count):
        rng = random.Random(f"fuzz_specs:{opts.seed}:{n}")
        text, chip = make_input(rng, seeds), rng.choice(CHIPS)
        options = [o for _ in range(rng.choice([0, 0, 1, 2])) for o in rng.choice(OPTIONS)]
        inputs.append((n, text, chip, options))
    if opts.only is not None:
        inputs = [inputs[opts.only]]
    failures = 0
    with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
        for (n, text, *_), result in zip(inputs, pool.map(lambda a: check(opts, *a), inputs)):
            if result is None:
                continue
            failures += 1
            argv, why = result
            print(f"input {n} (--seed {opts.seed} --only {n}): {why}\n  {' '.join(argv)}\n"
                  f"  spec: {text[:500]}", flush=True)
    print(f"{len(inputs)} inputs, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
