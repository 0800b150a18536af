# Mutation fuzzing of attn-opt: thousands of small corruptions of valid and
# invalid attention IR must each end with exit code 0, or exit code 1 and a
# located "file:line:col: error:" -- never a crash, an assertion or a hang.
#
# RUN: %python %s %attn_src_root/test/IR/roundtrip.mlir %attn_src_root/test/IR/invalid.mlir --attn-opt attn-opt --count 400 --seed 1
# The paged attention op's parser and verifier:
# RUN: %python %s %attn_src_root/test/IR/paged-roundtrip.mlir %attn_src_root/test/IR/paged-invalid.mlir --attn-opt attn-opt --count 300 --seed 9
# RUN: %python %s %attn_src_root/test/IR/paged-roundtrip.mlir --attn-opt attn-opt --count 60 --seed 10 --no-synth --pass-args=--attn-to-cpu
# The gated delta rule op's parser and verifier, and the passes that reject it:
# RUN: %python %s %attn_src_root/test/IR/gated-delta-roundtrip.mlir %attn_src_root/test/IR/gated-delta-invalid.mlir --attn-opt attn-opt --count 300 --seed 12 --no-synth
# RUN: %python %s %attn_src_root/test/IR/gated-delta-roundtrip.mlir --attn-opt attn-opt --count 60 --seed 13 --no-synth --pass-args=--attn-to-cpu
# attn-tile and the whole CPU pipeline on synthesized attention ops (odd and
# empty shapes, every variant attribute):
# RUN: %python %s %attn_src_root/test/IR/roundtrip.mlir --attn-opt attn-opt --count 200 --seed 5 --pass-args=--attn-tile
# RUN: %python %s %attn_src_root/test/IR/roundtrip.mlir --attn-opt attn-opt --count 100 --seed 6 --pass-args=--attn-to-cpu
# The GPU pipeline also rejects, by design, the position offset of a sharded
# sequence's block (CPU only so far):
# RUN: %python %s %attn_src_root/test/IR/roundtrip.mlir --attn-opt attn-opt --count 100 --seed 8 --pass-args=--attn-to-ptx=chip=sm_80 --allow-error "GPU kernels need static head dims|position_offset, which no GPU kernel takes yet"
# attn-fuse on mutated attention graphs (matcher corner cases):
# RUN: %python %s %attn_src_root/test/Transforms/attn-fuse-linalg.mlir %attn_src_root/test/Transforms/attn-fuse-negative.mlir %attn_src_root/test/Transforms/attn-fuse-tosa.mlir --attn-opt attn-opt --count 300 --seed 2 --no-synth --pass-args=--attn-fuse


import argparse
import random
import re
import subprocess
import sys

# Replacements chosen to reach the parser's and the verifier's corners.
TOKENS = [
    "0", "-1", "1", "?", "9223372036854775807", "-9223372036854775808",
    "99999999999999999999", "0.0", "-0.0", "nan", "inf", "0x7F800000", "1e400",
    "<", ">", "(", ")", ",", ":", "=", "x", "xf16", "*x", "%q", "%k", "",
    "tensor<", "tensor<*xf16>", "tensor<1x1x1x1xf16>", "tensor<0x0x0x0xbf16>",
    "tensor<?x?x?x?xf32>", "memref<1x4x8x32xf16>", "vector<4xf16>", "i8", "f64",
    "bias", "sinks", "layout", "mask", "scale", "softcap", "bshd", "bhsd",
    "causal", "window", "none", "left", "right", "attn.attention",
    "#attn.mask<window, left = 3, right = 2>", "#attn.mask<causal>",
    "\"attn.attention\"", "<{", "}>", "{", "}", "^bb0:", "\x00", "\xff",
    "attn.paged_attention", "cache_layout", "hnd", "nhd", "i32", "i64",
    "tensor<2x4xi32>", "tensor<0xi64>",
]

# Swaps that keep the IR parseable and well-typed but change its meaning:
# they reach the matcher's decisions instead of the parser's errors.
SWAPS = [
    ("arith.mulf", "arith.addf"), ("arith.addf", "arith.subf"),
    ("arith.divf", "arith.mulf"), ("arith.maximumf", "arith.minimumf"),
    ("arith.maxnumf", "arith.addf"), ("math.exp", "math.tanh"),
    ("math.tanh", "math.exp"), ("sle", "sgt"), ("ule", "ult"), ("sge", "slt"),
    ("slt", "sge"), ("ult", "uge"), ("linalg.index 1", "linalg.index 2"),
    ("linalg.index 2", "linalg.index 0"), ("linalg.index 3", "linalg.index 2"),
    ("dimension(2)", "dimension(1)"), ("dimension(2)", "dimension(0)"),
    ("0xFF800000", "0.0"), ("0xFF800000", "-1.0"), ("0.125", "-0.125"),
    ("0.125", "0.0"), ("%zero", "%ninf"), ("%ninf", "%zero"), ("0.0", "1.0"),
    ("axis = 2", "axis = 1"), ("tosa.reduce_max", "tosa.reduce_sum"),
    ("tosa.sub", "tosa.add"), ("tosa.exp", "tosa.tanh"),
    ("tosa.reciprocal", "tosa.exp"), ('"parallel", "reduction"', '"reduction", "parallel"'),
    ("permutation = [0, 2, 1]", "permutation = [0, 1, 2]"),
    ("array<i32: 0, 2, 1>", "array<i32: 0, 1, 2>"),
    ("(d0, d1, d2, 0)", "(d0, d1, 0, d3)"), ("(d0, 0, d2, d3)", "(0, d1, d2, d3)"),
    ("(d1, d2)", "(d2, d1)"), ("%x, %b", "%b, %x"), ("true", "false"),
]


def swap(rng, text):
    options = [(a, b) for a, b in SWAPS if a in text]
    if not options:
        return text
    a, b = rng.choice(options)
    starts = [m.start() for m in re.finditer(re.escape(a), text)]
    i = rng.choice(starts)
    return text[:i] + b + text[i + len(a):]


NUM = re.compile(r"-?\d+(\.\d+)?(e[+-]?\d+)?")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*|%[A-Za-z0-9_]+|\S")
LOCATED = re.compile(r":\d+:\d+: error:")


def chunks(paths, keep=lambda chunk: "func.func" in chunk):
    """Functions of the inputs, split like -split-input-file, comments dropped
    (the chunks `keep` accepts)."""
    out = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for chunk in text.split("// -----"):
            chunk = "\n".join(l for l in chunk.splitlines()
                              if not l.lstrip().startswith("//"))
            if keep(chunk):
                out.append(chunk)
    return out


def mutate(rng, text):
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(5)
        if kind == 0:  # replace a number
            nums = list(NUM.finditer(text))
            if nums:
                m = rng.choice(nums)
                text = text[: m.start()] + rng.choice(TOKENS[:14]) + text[m.end():]
                continue
        if kind <= 1:  # replace a token
            toks = list(WORD.finditer(text))
            if toks:
                m = rng.choice(toks)
                text = text[: m.start()] + rng.choice(TOKENS) + text[m.end():]
                continue
        if kind == 2:  # delete a span
            a = rng.randrange(len(text) + 1)
            text = text[:a] + text[a + rng.randint(1, 40):]
        elif kind == 3:  # duplicate a span
            a = rng.randrange(len(text) + 1)
            b = min(len(text), a + rng.randint(1, 80))
            text = text[:b] + text[a:b] + text[b:]
        else:  # truncate
            text = text[: rng.randrange(len(text) + 1)]
    return text


DIMS = ["0", "1", "2", "3", "4", "7", "8", "16", "?"]
ELTS = ["f16", "bf16", "f32", "f64", "i8", "f8E4M3FN"]


def rand_type(rng, base):
    """A tensor type near `base` (a list of dims) with random corruption."""
    dims = list(base)
    if rng.random() < 0.05:
        dims = [rng.choice(DIMS) for _ in range(rng.choice([0, 1, 2, 3, 4, 4, 5]))]
    elif rng.random() < 0.12 and dims:
        dims[rng.randrange(len(dims))] = rng.choice(DIMS)
    elt = rng.choice(ELTS) if rng.random() < 0.04 else None
    if rng.random() < 0.03:
        return f"tensor<*x{elt or 'f16'}>"
    return "tensor<" + "".join(d + "x" for d in dims) + (elt or "{elt}") + ">"


def synthesize(rng):
    """A well-formed function around one attn.attention with random shapes and
    attributes: it parses as far as the verifier, which must then decide."""
    b, hkv, sq, sk, d, dv = (rng.choice(DIMS) for _ in range(6))
    g = rng.choice([1, 1, 2, 7])
    hq = "?" if hkv == "?" else str(int(hkv) * g)
    elt = rng.choice(["f16", "bf16", "f32"])
    bshd = rng.random() < 0.3
    def qkv(h, s, dd):
        return [b, s, h, dd] if bshd else [b, h, s, dd]
    types = [rand_type(rng, qkv(hq, sq, d)), rand_type(rng, qkv(hkv, sk, d)),
             rand_type(rng, qkv(hkv, sk, dv))]
    operands = ["%q", "%k", "%v"]
    text = ""
    if rng.random() < 0.4:
        types.append(rand_type(rng, [rng.choice([b, "1"]), rng.choice([hq, "1"]), sq, sk]))
        operands.append("%bias")
        text += " bias(%bias)"
    if rng.random() < 0.3:
        types.append(rand_type(rng, [hq]))
        operands.append("%sinks")
        text += " sinks(%sinks)"
    if bshd:
        text += " layout = bshd"
    r = rng.random()
    if r < 0.3:
        text += " mask = <causal>"
    elif r < 0.6:
        text += f" mask = <window, left = {rng.choice(['0', '3', '-1', '9223372036854775807'])}, right = {rng.choice(['0', '5', '-2'])}>"
    if rng.random() < 0.3:
        text += f" scale = {rng.choice(['0.125', '0.0', '-1.0', '1e38', '0x7F800000'])}"
    if rng.random() < 0.3:
        text += f" softcap = {rng.choice(['30.0', '0.0', '-5.0', '0x7FC00000'])}"
    results = [rand_type(rng, qkv(hq, sq, dv))]
    if rng.random() < 0.4:
        results.append(rand_type(rng, [b, hq, sq]).replace("{elt}", rng.choice(["f32", "f32", elt])))
    types = [t.replace("{elt}", elt) for t in types]
    results = [t.replace("{elt}", elt) for t in results]
    args = ", ".join(f"{o}: {t}" for o, t in zip(operands, types))
    names = ", ".join(f"%r{i}" for i in range(len(results)))
    return (f"func.func @f({args}) {{\n"
            f"  {names} = attn.attention {operands[0]}, {operands[1]}, {operands[2]}{text}"
            f" : ({', '.join(types)}) -> ({', '.join(results)})\n  return\n}}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--attn-opt", default="attn-opt")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pass-args", default="",
                    help="extra attn-opt arguments, e.g. --attn-fuse")
    ap.add_argument("--allow-error", default=None,
                    help="regex of documented 'unsupported input' diagnostics a "
                         "pass may give on valid input")
    ap.add_argument("--no-synth", action="store_true",
                    help="only mutate the inputs (no synthesized attn ops)")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    corpus = chunks(args.inputs)
    failures = 0
    outcomes = {0: 0, 1: 0}
    for n in range(args.count):
        if args.no_synth:
            text = rng.choice(corpus)
            for _ in range(rng.randint(1, 2)):
                text = swap(rng, text)
            if n % 4 == 0:
                text = mutate(rng, text)
        else:
            text = synthesize(rng) if n % 2 else mutate(rng, rng.choice(corpus))
        def run(extra):
            return subprocess.run([args.attn_opt, "-", "-o", "/dev/null"] + extra,
                                  input=text.encode("utf-8", "surrogateescape"),
                                  capture_output=True, timeout=30)
        try:
            p = run(args.pass_args.split())
            # A pass must never turn valid IR into invalid IR: when the input
            # alone is accepted, the pass run must be accepted too.
            allowed = (args.allow_error and p.returncode == 1 and
                       re.search(args.allow_error, p.stderr.decode("utf-8", "replace")))
            if p.returncode != 0 and args.pass_args and not allowed and run([]).returncode == 0:
                failures += 1
                print(f"mutant {n}: valid input, but the pass failed\n"
                      f"--- input ---\n{text}\n--- stderr ---\n"
                      f"{p.stderr.decode('utf-8', 'replace')}")
                continue
        except subprocess.TimeoutExpired:
            print(f"mutant {n}: timeout\n{text}")
            failures += 1
            continue
        err = p.stderr.decode("utf-8", "replace")
        ok = (p.returncode == 0) or (p.returncode == 1 and LOCATED.search(err))
        if "Stack dump" in err or "PLEASE submit" in err or "Assertion" in err:
            ok = False
        if not ok:
            failures += 1
            print(f"mutant {n}: exit {p.returncode}\n--- input ---\n{text}\n--- stderr ---\n{err}")
        else:
            outcomes[p.returncode] += 1
    print(f"{args.count} mutants: {outcomes[0]} accepted, {outcomes[1]} rejected "
          f"with a located error, {failures} bad")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
