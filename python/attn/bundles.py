# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Compile kernel bundles for attention variants (on a machine with attn-compile).

    python3 -m attn.bundles -o build/bundles [--chip sm_90a] --gpu-suite|--bench
        [--kernel auto|mma|wgmma|baseline] [--block-q N] [--block-kv N]

--gpu-suite writes the bundles the GPU test suite needs
(python/tests/gpu_cases.py), --bench those of the benchmark
(python -m attn.bench). A variant is a dict with the keys of a
manifest's "variant" (see python/attn/gpu.py); each becomes a kernel spec
(spec_of, docs/kernel-spec.md) that `attn-compile --spec` compiles.
"""

import argparse
import concurrent.futures
import json
import numbers
import os
import subprocess
import sys

from . import cpu


# The schema version of the specs written here (attn::kKernelSpecVersion,
# include/attn/IR/KernelSpec.h): attn-compile refuses a spec of another one.
SPEC_VERSION = 1
# The longest chunk the gated delta kernels take (attn::kMaxGatedDeltaChunk):
# the op's chunk_size if smaller; the chunk does not change the result.
MAX_GATED_DELTA_CHUNK = 32
# The keys of each spec besides "op" and "version" (docs/kernel-spec.md); a
# key absent from a variant takes the schema's default.
_SPEC_KEYS = {
    "attention": ("dtype", "head_dim", "value_head_dim", "layout", "mask", "window_left",
                  "window_right", "scale", "softcap", "bias", "bias_dtype", "bias_broadcast",
                  "sinks", "sinks_dtype", "lse", "kernel", "block_q", "block_kv"),
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
    - "nsa": the block selection only ("window" and "page_size" are the
      branches', nsa_variants); D = Dv.

    Keys outside the family's schema are dropped; window extents are kept
    only for window masks. ValueError on an unknown op or a variant with no
    GPU kernel."""
    op = v.get("op", "attention")
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
    return spec


_SPEC_KEY_NEEDS = {"window_left": ("mask", "window"), "window_right": ("mask", "window"),
                   "sinks_dtype": ("sinks", True), "bias_dtype": ("bias", True),
                   "bias_broadcast": ("bias", True)}


def _plain(x):
    """`x` as JSON data: NumPy's numbers (say, a scale computed with NumPy)
    as Python's, tuples as lists."""
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
    kernel, the causal attention kernel (bshd, with LSE) of the compressed
    branch, the window branch's attention kernel (bshd), and the paged
    kernels of the selected branch (pages of sel_block) and of the
    compressed branch when compressed tokens are missing (pages of
    page_size, with LSE)."""
    paged = {"op": "paged_attention", "dtype": v["dtype"], "head_dim": v["head_dim"],
             "value_head_dim": v["head_dim"], "cache_layout": "nhd", "table_dtype": "i32",
             "lens_dtype": "i32", "mask": "none", "scale": v["scale"], "softcap": None,
             "sinks": False, "values": "separate"}
    window = {"dtype": v["dtype"], "head_dim": v["head_dim"], "value_head_dim": v["head_dim"],
              "layout": "bshd", "mask": "window", "window_left": v["window"] - 1,
              "window_right": 0, "scale": v["scale"], "softcap": None, "bias": False,
              "sinks": False, "lse": False}
    causal = {key: val for key, val in window.items() if not key.startswith("window_")}
    return [v, dict(causal, mask="causal", lse=True), window,
            dict(paged, page_size=v.get("page_size", 64), lse=True),
            dict(paged, page_size=v["sel_block"], lse=False)]


def specs_of(variants):
    """The distinct specs (spec_of) of `variants`, in order; an NSA variant
    stands for the kernels its GPU path runs (nsa_variants)."""
    specs = [spec_of(k) for v in variants
             for k in (nsa_variants(v) if v.get("op") == "nsa" else [v])]
    return list({json.dumps(s, sort_keys=True): s for s in specs}.values())


def compile_variants(variants, outdir, chip="sm_90a", attn_compile=None, kernel="auto",
                     extra=(), jobs=None):
    """Writes the bundles of `variants` into `outdir` (emptied of earlier
    bundles first): one `attn-compile --spec -` run per distinct spec
    (specs_of), so that each manifest's compile_seconds is that spec's own
    compile time; `jobs` runs at once (jobs=1 keeps those times free of
    contention). Returns the names attn-compile reports."""
    tool = attn_compile or os.environ.get("ATTN_COMPILE") or os.path.join(
        os.path.dirname(cpu.tools()[0]) if cpu.tools() else "build/bin", "attn-compile")
    specs = specs_of(variants)  # bad variants fail before anything is removed
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
            raise RuntimeError(f"attn-compile failed on the spec {json.dumps(spec)}:\n"
                               + out.stderr.decode())
        return out.stdout.decode().split()
    with concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        return [name for names in pool.map(one, specs) for name in names]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--chip", default="sm_90a")
    ap.add_argument("--gpu-suite", action="store_true")
    ap.add_argument("--bench", action="store_true",
                    help="the variants of the benchmark (python -m attn.bench)")
    ap.add_argument("--paged-bench", action="store_true",
                    help="the variants of the paged decode benchmark (python -m attn.bench_paged)")
    ap.add_argument("--gated-bench", action="store_true",
                    help="the variants of the gated delta benchmark (python -m attn.bench_gated)")
    ap.add_argument("--sparse-bench", action="store_true",
                    help="the variants of the sparse attention benchmark (python -m attn.bench_sparse)")
    ap.add_argument("--kernel", default="auto", choices=["baseline", "mma", "wgmma", "auto"])
    ap.add_argument("--block-q", type=int, default=0)
    ap.add_argument("--block-kv", type=int, default=0)
    ap.add_argument("--opt-level", type=int, default=3, choices=[0, 1, 2, 3],
                    help="LLVM optimization level of the kernels")
    args = ap.parse_args()
    if args.gpu_suite + args.bench + args.paged_bench + args.gated_bench + args.sparse_bench != 1:
        ap.error("pass one of --gpu-suite, --bench, --paged-bench, --gated-bench or "
                 "--sparse-bench")
    if args.gpu_suite:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        import gpu_cases
        variants = gpu_cases.variants()
    elif args.paged_bench:
        from . import bench_paged
        variants = bench_paged.variants()
    elif args.gated_bench:
        from . import bench_gated
        variants = bench_gated.variants()
    elif args.sparse_bench:
        from . import bench_sparse
        variants = bench_sparse.variants()
    else:
        from . import bench
        variants = bench.variants()
    written = compile_variants(variants, args.output, args.chip, kernel=args.kernel,
                               extra=[f"--block-q={args.block_q}", f"--block-kv={args.block_kv}",
                                      f"--opt-level={args.opt_level}"],
                               jobs=1 if args.bench else None)
    print(f"{len(written)} bundles in {args.output}")


if __name__ == "__main__":
    main()
