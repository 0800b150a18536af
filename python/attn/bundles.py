# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Compile kernel bundles ahead of time, on a machine with attn-compile.

    python3 -m attn.bundles -o DIR [--chip sm_90a] [--kernel auto|mma|wgmma|baseline]
        [--block-q N] [--block-kv N] [--opt-level N] [--specialize]
        [--compile-arg OPTION ...] WHAT

WHAT is one of

    --variant JSON        a variant (repeatable): the keys of a manifest's
                          "variant" (python/attn/gpu.py) plus "op" (default
                          "attention"), e.g. --variant '{"dtype": "bf16",
                          "head_dim": 128, "mask": "causal",
                          "scale": 0.08838834764831845}'
    --spec FILE|-         a kernel spec or a JSON array of them
                          (docs/kernel-spec.md), handed to attn-compile as
                          they are
    --variants-from FILE  the variants of FILE: a JSON array, or a Python
                          file whose variants() returns them
    --gpu-suite           the GPU test suite's variants: --variants-from
                          python/tests/gpu_cases.py of a source checkout
    --bench, --paged-bench, --gated-bench, --sparse-bench, --values-bench
                          those of the benchmarks (python -m attn.bench, ...)

--specialize compiles each variant's scale, softcap value and window extents
into its kernel; by default they are kernel arguments and one kernel serves
every value (a call finds a specialized kernel first where one matches).

DIR is emptied of earlier bundles first; GPU code loads it with
bundles=DIR (attn.gpu). Each variant becomes a kernel spec (spec_of) that
`attn-compile --spec` compiles; attn-compile is found as attn.jit finds it
($ATTN_COMPILE, beside the package, PATH). attn.jit compiles the same
bundles on first use into a cache instead.
"""

import argparse
import concurrent.futures
import importlib
import importlib.util
import json
import numbers
import os
import subprocess
import sys


# The schema version of the specs written here (attn::kKernelSpecVersion,
# include/attn/IR/KernelSpec.h): attn-compile refuses a spec of another one.
SPEC_VERSION = 2
# The longest chunk the gated delta kernels take (attn::kMaxGatedDeltaChunk):
# the op's chunk_size if smaller; the chunk does not change the result.
MAX_GATED_DELTA_CHUNK = 32
# The keys of each spec besides "op" and "version" (docs/kernel-spec.md); a
# key absent from a variant takes the schema's default.
_SPEC_KEYS = {
    "attention": ("dtype", "out_dtype", "descale", "head_dim", "value_head_dim", "layout",
                  "mask", "window_left", "window_right", "scale", "softcap", "bias", "bias_dtype",
                  "bias_broadcast", "sinks", "sinks_dtype", "lse", "kernel", "block_q",
                  "block_kv"),
    "attention_grad": ("dtype", "head_dim", "value_head_dim", "layout", "mask", "window_left",
                       "window_right", "scale", "softcap", "bias", "bias_dtype",
                       "bias_broadcast", "sinks", "sinks_dtype", "kernel", "deterministic",
                       "dq_reduce"),
    "paged_attention": ("dtype", "head_dim", "value_head_dim", "page_size", "cache_layout",
                        "table_dtype", "lens_dtype", "mask", "window_left", "window_right",
                        "scale", "softcap", "values", "sinks", "sinks_dtype", "lse"),
    "gated_delta_rule": ("dtype", "key_head_dim", "value_head_dim", "chunk", "gate_kind",
                         "gate_dtype", "beta_dtype", "qk_l2norm", "scale", "initial_state"),
    "nsa": ("dtype", "head_dim", "value_head_dim", "q_heads", "kv_heads", "cmp_block",
            "cmp_stride", "sel_block", "num_selected", "initial_blocks", "local_blocks", "scale"),
    "lightning_indexer": ("dtype", "heads", "head_dim", "weights_dtype", "mask", "window_left",
                          "window_right"),
}


def spec_of(v):
    """The kernel spec (docs/kernel-spec.md) that attn-compile --spec
    compiles for variant `v`, a dict with the keys of a manifest's
    "variant": those of the spec's family, "op" (default "attention") and
    "version" (SPEC_VERSION). Where a variant is not itself a kernel family,
    the spec is that of the kernels its GPU path runs on, as the op's
    KernelSpecOpInterface says (lib/IR/KernelSpecOpInterface.cpp):

    - "sparse_attention" (block_size, values, mask causal or none): the
      paged kernels over pages of block_size keys, NHD, i32 table and
      lengths, no mask (gpu.sparse_attention folds causality into each
      row's length);
    - "paged_attention" without "lens_dtype": the lengths in the table's
      type (gpu.paged_attention converts them so);
    - "gated_delta_rule": the chunk at most MAX_GATED_DELTA_CHUNK (64 when
      not given, the op's default);
    - "nsa": the block selection and selected branch ("window" and
      "page_size" are the other branches', nsa_variants); Dv defaults to D.

    Keys outside the family's schema are dropped; window extents are kept
    only for window masks. Dense and paged kernels take the scale, the
    softcap's value and the window extents as arguments ("runtime"): one
    kernel serves every value. A variant with "specialize": true (or a
    negative scale, which the wgmma kernel cannot take at run time) keeps
    its numbers, compiled into the kernel. ValueError on an unknown op or a
    variant with no GPU kernel."""
    op = v.get("op", "attention")
    runtime = runtime_values(v)
    if op == "sparse_attention":
        if v.get("mask", "none") not in ("none", "causal"):
            raise ValueError(f"sparse attention runs on the paged kernels with causal or no "
                             f"mask; a {v['mask']} mask has no GPU kernel: {v}")
        v = dict({key: val for key, val in v.items() if key in _SPEC_KEYS["paged_attention"]},
                 page_size=v["block_size"], cache_layout="nhd", table_dtype="i32",
                 lens_dtype="i32", mask="none", values=v.get("values", "separate"))
        op = "paged_attention"
    elif op == "paged_attention":
        v = dict(v, lens_dtype=v.get("lens_dtype", v.get("table_dtype", "i32")))
    elif op == "gated_delta_rule":
        v = dict(v, chunk=min(int(v.get("chunk", 64)), MAX_GATED_DELTA_CHUNK))
    elif op == "nsa":
        v = dict(v, value_head_dim=v.get("value_head_dim", v["head_dim"]))
    if op not in _SPEC_KEYS:
        raise ValueError(f"no kernel spec for op {op!r} (kernel families: "
                         f"{', '.join(_SPEC_KEYS)}, and sparse_attention)")
    spec = {"op": op, "version": SPEC_VERSION}
    for key in _SPEC_KEYS[op]:
        # Keys that only mean something with another (as attn::toJSON
        # writes them): window extents, sinks' and bias' types and shape.
        needs = _SPEC_KEY_NEEDS.get(key)
        if key in v and (needs is None or v.get(needs[0]) in needs[1:]):
            spec[key] = _plain(v[key])
    # A backward's "kernel" only pins its dK/dV kernel, "mma" or "wgmma" (a
    # forward variant's kind says nothing about the backward).
    if op == "attention_grad" and spec.get("kernel") not in ("mma", "wgmma"):
        spec.pop("kernel", None)
    # "deterministic" only where it is false (attn::toJSON's rule: the
    # deterministic backward's variants keep their JSON).
    if op == "attention_grad" and spec.get("deterministic", False) is not False:
        spec.pop("deterministic", None)
    # Likewise "dq_reduce" only as "atomic" (the fused dQ's tuning choice).
    if op == "attention_grad" and ("deterministic" not in spec
                                   or spec.get("dq_reduce") != "atomic"):
        spec.pop("dq_reduce", None)
    if op in ("attention", "attention_grad", "paged_attention") and runtime:
        spec["scale"] = "runtime"
        if spec.get("softcap") is not None:
            spec["softcap"] = "runtime"
        if spec.get("mask") == "window":
            spec["window_left"] = spec["window_right"] = "runtime"
    return spec


def runtime_values(v):
    """Whether the kernels of dense or paged variant `v` take its scale,
    softcap and window extents as arguments (attn::withRuntimeValues): unless
    it asks to specialize, or its scale is negative."""
    if v.get("specialize"):
        return False
    scale = v.get("scale", "runtime")
    return scale == "runtime" or scale is None or float(scale) >= 0


_SPEC_KEY_NEEDS = {"window_left": ("mask", "window"), "window_right": ("mask", "window"),
                   "sinks_dtype": ("sinks", True), "bias_dtype": ("bias", True),
                   "bias_broadcast": ("bias", True),
                   # FP8's keys (attn::toJSON writes them only for FP8 specs).
                   "out_dtype": ("dtype", "f8e4m3"), "descale": ("dtype", "f8e4m3")}


def _plain(x):
    """`x` as JSON data: NumPy's numbers (say, a scale computed with NumPy)
    as Python's, tuples as lists."""
    if isinstance(x, dict):
        return {key: _plain(val) for key, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(e) for e in x]
    if isinstance(x, (bool, str)) or x is None:
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x)
    return x


def nsa_variants(v):
    """The kernels attn.gpu.nsa runs for NSA variant `v` (keys of the
    selection kernel's variant, plus "window" and "page_size"): the selection
    kernel (with it, for selection blocks of a multiple of 16 keys, the
    selected branch's kernel nsa.attend), the causal attention kernel (bshd,
    with LSE) of the compressed branch, the window branch's attention
    kernel (bshd), the paged kernels of the compressed branch when
    compressed tokens are missing (pages of page_size, with LSE) and, for
    other selection blocks, those of the selected branch (pages of
    sel_block; the rule is attn::detail::nsaAttendAccepts's)."""
    dv = v.get("value_head_dim", v["head_dim"])
    paged = {"op": "paged_attention", "dtype": v["dtype"], "head_dim": v["head_dim"],
             "value_head_dim": dv, "cache_layout": "nhd", "table_dtype": "i32",
             "lens_dtype": "i32", "mask": "none", "scale": v["scale"], "softcap": None,
             "sinks": False, "values": "separate"}
    window = {"dtype": v["dtype"], "head_dim": v["head_dim"], "value_head_dim": dv,
              "layout": "bshd", "mask": "window", "window_left": v["window"] - 1,
              "window_right": 0, "scale": v["scale"], "softcap": None, "bias": False,
              "sinks": False, "lse": False}
    if v.get("specialize"):
        paged["specialize"] = window["specialize"] = True
    causal = {key: val for key, val in window.items() if not key.startswith("window_")}
    kernels = [v, dict(causal, mask="causal", lse=True), window,
               dict(paged, page_size=v.get("page_size", 64), lse=True)]
    if v["sel_block"] % 16:
        kernels.append(dict(paged, page_size=v["sel_block"], lse=False))
    return kernels


def specs_of(variants):
    """The distinct specs (spec_of) of `variants`, in order; an NSA variant
    stands for the kernels its GPU path runs (nsa_variants)."""
    specs = [spec_of(k) for v in variants
             for k in (nsa_variants(v) if v.get("op") == "nsa" else [v])]
    return list({json.dumps(s, sort_keys=True): s for s in specs}.values())


class CompileError(RuntimeError):
    """attn-compile failed on a spec; the message holds the spec and
    attn-compile's stderr (also as .spec and .stderr)."""

    def __init__(self, spec, stderr):
        super().__init__(f"attn-compile failed on the spec {json.dumps(spec)}:\n{stderr}")
        self.spec, self.stderr = spec, stderr


def compile_variants(variants, outdir, chip="sm_90a", attn_compile=None, kernel="auto",
                     extra=(), jobs=None):
    """Writes the bundles of `variants` into `outdir`: compile_specs of
    their distinct specs (specs_of). Returns the names attn-compile
    reports."""
    specs = specs_of(variants)  # bad variants fail before anything is removed
    return compile_specs(specs, outdir, chip, attn_compile, kernel, extra, jobs)


def compile_specs(specs, outdir, chip="sm_90a", attn_compile=None, kernel="auto", extra=(),
                  jobs=None):
    """Writes the bundles of kernel specs `specs` (handed to attn-compile as
    they are) into `outdir`, emptied of earlier bundles first: one
    `attn-compile --spec -` run per spec, so that each manifest's
    compile_seconds is that spec's own compile time; `jobs` runs at once
    (jobs=1 keeps those times free of contention). `attn_compile` defaults
    to attn.jit.find_compiler(). Returns the names attn-compile reports;
    CompileError when it fails."""
    tool = attn_compile or _find_compiler()
    # A bundle directory holds one build: stale kernels of an earlier build
    # (say, baseline ones) would otherwise be matched too.
    if os.path.isdir(outdir):
        for f in os.listdir(outdir):
            if f.endswith((".ptx", ".json")):
                os.remove(os.path.join(outdir, f))

    def one(spec):
        out = subprocess.run([tool, "--spec", "-", "-o", outdir, f"--chip={chip}",
                              f"--kernel={kernel}", *extra],
                             input=json.dumps(spec).encode(), capture_output=True)
        if out.returncode:
            raise CompileError(spec, out.stderr.decode(errors="replace"))
        return out.stdout.decode().split()
    with concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        return [name for names in pool.map(one, specs) for name in names]


def _find_compiler():
    from . import jit  # jit builds on this module
    tool = jit.find_compiler()
    if tool is None:
        raise jit.CompilerNotFound(f"{jit._why_missing()}; {jit._WHERE}")
    return tool


def load_variants(path):
    """The variants listed in the file `path`: a JSON array of variants, or
    a Python file whose variants() returns them (loaded by its path, as a
    module of its own: nothing is added to sys.path)."""
    if path.endswith(".py"):
        spec = importlib.util.spec_from_file_location(
            "_attn_variants_" + os.path.splitext(os.path.basename(path))[0], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not callable(getattr(module, "variants", None)):
            raise ValueError(f"{path}: defines no variants() function")
        return module.variants()
    with open(path) as f:
        variants = json.load(f)
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise ValueError(f"{path}: expected a JSON array of variants (objects)")
    return variants


# The GPU suite's variants (--gpu-suite): test data of the source checkout,
# not of the package, read as any --variants-from file.
_GPU_SUITE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "tests", "gpu_cases.py")
# The benchmarks whose variants --bench etc. compile: flag -> module.
_BENCHES = {"bench": "bench", "paged_bench": "bench_paged", "gated_bench": "bench_gated",
            "sparse_bench": "bench_sparse", "values_bench": "bench_values"}


def _arguments():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", required=True, help="the bundle directory")
    ap.add_argument("--chip", default="sm_90a")
    ap.add_argument("--kernel", default="auto", choices=["baseline", "mma", "wgmma", "auto"])
    ap.add_argument("--block-q", type=int, help="query rows per block (mma.sync; 64 or 128)")
    ap.add_argument("--block-kv", type=int, help="keys per step (mma.sync; 16, 32, 64 or 128)")
    ap.add_argument("--opt-level", type=int, choices=[0, 1, 2, 3],
                    help="LLVM optimization level of the kernels (attn-compile's default: 3)")
    ap.add_argument("--specialize", action="store_true",
                    help="compile each variant's scale, softcap and window extents into its "
                         "kernel (default: kernel arguments, one kernel for every value)")
    ap.add_argument("--compile-arg", action="append", default=[], metavar="OPTION",
                    help="another attn-compile option, passed as it is (--compile-arg=--no-fuse)")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--variant", action="append", type=_json_object, metavar="JSON",
                      help="a variant: the keys of a manifest's \"variant\" plus \"op\" "
                           "(repeatable)")
    what.add_argument("--spec", metavar="FILE|-",
                      help="a kernel spec or a JSON array of them (docs/kernel-spec.md)")
    what.add_argument("--variants-from", metavar="FILE",
                      help="the variants of FILE: a JSON array, or a .py file with variants()")
    what.add_argument("--gpu-suite", action="store_true",
                      help="the GPU test suite's variants (a source checkout's "
                           "python/tests/gpu_cases.py)")
    for flag, module in _BENCHES.items():
        what.add_argument("--" + flag.replace("_", "-"), action="store_true",
                          help=f"the variants of python -m attn.{module}")
    return ap


def _json_object(text):
    try:
        v = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return v


def _read_specs(source):
    """The specs of --spec FILE|-: one object or an array of them."""
    if source == "-":
        specs = json.load(sys.stdin)
    else:
        with open(source) as f:
            specs = json.load(f)
    specs = specs if isinstance(specs, list) else [specs]
    if not specs or not all(isinstance(s, dict) for s in specs):
        raise ValueError(f"{source}: expected a kernel spec (object) or an array of them")
    return specs


def _variants(args):
    if args.variant:
        return args.variant
    if args.gpu_suite:
        if not os.path.exists(_GPU_SUITE):
            raise ValueError(f"--gpu-suite reads {_GPU_SUITE}, which only a source checkout "
                             f"has; pass --variants-from FILE")
        return load_variants(_GPU_SUITE)
    if args.variants_from:
        return load_variants(args.variants_from)
    flag = next(flag for flag in _BENCHES if getattr(args, flag))
    return importlib.import_module(f".{_BENCHES[flag]}", __package__).variants()


def main(argv=None):
    args = _arguments().parse_args(argv)
    extra = [f"--{name.replace('_', '-')}={value}"
             for name, value in (("block_q", args.block_q), ("block_kv", args.block_kv),
                                 ("opt_level", args.opt_level)) if value is not None]
    extra += args.compile_arg
    try:
        if args.spec:
            if args.specialize:
                raise ValueError("--specialize is for variants: a spec's numbers are "
                                 "compiled in and its \"runtime\" values are not")
            written = compile_specs(_read_specs(args.spec), args.output, args.chip,
                                    kernel=args.kernel, extra=extra)
        else:
            # The benchmark's manifests report compile times: one compile at a time.
            variants = _variants(args)
            if not args.variant and not args.variants_from and args.chip != "sm_90a":
                # A named set's FP8 variants run on the sm_90a kernel alone.
                fp8 = [v for v in variants if v.get("dtype") == "f8e4m3"]
                if fp8:
                    print(f"attn.bundles: {len(fp8)} FP8 variants left out (their kernel is "
                          f"sm_90a's)", file=sys.stderr)
                    variants = [v for v in variants if v.get("dtype") != "f8e4m3"]
            if args.specialize:
                variants = [dict(v, specialize=True) for v in variants]
            written = compile_variants(variants, args.output, args.chip,
                                       kernel=args.kernel, extra=extra,
                                       jobs=1 if args.bench else None)
    except (LookupError, ValueError, OSError, CompileError) as e:
        sys.exit(f"attn.bundles: {e}")
    print(f"{len(written)} bundles in {args.output}")


if __name__ == "__main__":
    main()
