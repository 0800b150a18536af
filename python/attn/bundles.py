# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Compile kernel bundles for attention variants (on a machine with attn-compile).

    python3 -m attn.bundles -o build/bundles [--chip sm_90a] --gpu-suite|--bench
        [--kernel auto|mma|baseline] [--block-q N] [--block-kv N]

--gpu-suite writes the bundles the GPU test suite needs
(python/tests/gpu_cases.py), --bench those of the benchmark
(python -m attn.bench). A variant is a dict with the keys of a
manifest's "variant" (see python/attn/gpu.py).
"""

import argparse
import concurrent.futures
import os
import subprocess
import sys

from . import cpu


def _mask_scale_softcap(v):
    """The mask, scale and softcap attributes of variant `v` (attn.attention
    and attn.paged_attention spell them alike)."""
    text = ""
    if v["mask"] == "causal":
        text += " mask = <causal>"
    elif v["mask"] == "window":
        text += f" mask = <window, left = {v['window_left']}, right = {v['window_right']}>"
    text += f" scale = {repr(float(v['scale']))}"
    if v.get("softcap") is not None:
        text += f" softcap = {repr(float(v['softcap']))}"
    return text


def paged_variant_mlir(v, name="attn"):
    """A function with one attn.paged_attention of variant `v` (batch, heads,
    tokens and page counts are placeholders: the kernels take them at run
    time; head dims, page size and cache layout are compiled in)."""
    d, dv, page, dt = v["head_dim"], v["value_head_dim"], v["page_size"], v["dtype"]
    b, hq, hkv, sq, pages, maxp = 2, 4, 2, 1, 8, 4
    cache = ([pages, hkv, page] if v["cache_layout"] == "hnd" else [pages, page, hkv])
    # values = "key_prefix": the value cache is the first Dv columns of the
    # key cache (MLA's latent cache), a slice of it rather than an argument.
    prefix = v.get("values") == "key_prefix"
    kc_type, vc_type = cpu.tensor_type(cache + [d], dt), cpu.tensor_type(cache + [dv], dt)
    args = [("%q", cpu.tensor_type([b, sq, hq, d], dt)), ("%kc", kc_type), ("%vc", vc_type),
            ("%t", cpu.tensor_type([b, maxp], v.get("table_dtype", "i32"))),
            ("%l", cpu.tensor_type([b], v.get("table_dtype", "i32")))]
    slice_ = ""
    if prefix:
        sizes = ", ".join(str(x) for x in cache + [dv])
        slice_ = (f"  %vc = tensor.extract_slice %kc[0, 0, 0, 0] [{sizes}] [1, 1, 1, 1] : "
                  f"{kc_type} to {vc_type}\n")
    extra = ""
    if v.get("sinks"):
        args.append(("%sinks", cpu.tensor_type([hq], v["sinks_dtype"])))
        extra += " sinks(%sinks)"
    if v["cache_layout"] == "hnd":
        extra += " cache_layout = hnd"
    extra += _mask_scale_softcap(v)
    results = [cpu.tensor_type([b, sq, hq, dv], dt)]
    if v.get("lse"):
        results.append(cpu.tensor_type([b, hq, sq], "f32"))
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    operands = ", ".join(n for n, _ in args[:5])
    params = [a for a in args if not (prefix and a[0] == "%vc")]
    return (f"func.func @{name}({', '.join(f'{n}: {t}' for n, t in params)}) -> ({', '.join(results)}) {{\n"
            f"{slice_}"
            f"  {rn} = attn.paged_attention {operands}{extra} : ({', '.join(t for _, t in args)}) -> ({', '.join(results)})\n"
            f"  return {rn} : {', '.join(results)}\n}}\n")


def gated_variant_mlir(v, name="attn"):
    """A function with one attn.gated_delta_rule of variant `v` (batch, tokens
    and heads are placeholders; head dims, gates, L2 norm, scale, chunk and
    the initial state's presence are compiled in)."""
    dk, dv, dt = v["key_head_dim"], v["value_head_dim"], v["dtype"]
    b, t, hk, hv = 1, 8, 1, 2
    gate = [b, t, hv, dk] if v["gate_kind"] == "channel" else [b, t, hv]
    args = [("%q", cpu.tensor_type([b, t, hk, dk], dt)), ("%k", cpu.tensor_type([b, t, hk, dk], dt)),
            ("%v", cpu.tensor_type([b, t, hv, dv], dt)), ("%g", cpu.tensor_type(gate, v["gate_dtype"])),
            ("%beta", cpu.tensor_type([b, t, hv], v["beta_dtype"]))]
    extra = ""
    if v.get("initial_state"):
        args.append(("%s0", cpu.tensor_type([b, hv, dk, dv], "f32")))
        extra += " initial_state(%s0)"
    if v["gate_kind"] == "channel":
        extra += " gate_kind = channel"
    if v.get("qk_l2norm"):
        extra += " qk_l2norm"
    extra += f" scale = {float(v['scale'])!r} chunk_size = {int(v.get('chunk', 64))}"
    results = [cpu.tensor_type([b, t, hv, dv], dt), cpu.tensor_type([b, hv, dk, dv], "f32")]
    operands = ", ".join(n for n, _ in args[:5])
    return (f"func.func @{name}({', '.join(f'{n}: {ty}' for n, ty in args)}) -> ({', '.join(results)}) {{\n"
            f"  %o, %s = attn.gated_delta_rule {operands}{extra} : ({', '.join(ty for _, ty in args)}) -> ({', '.join(results)})\n"
            f"  return %o, %s : {', '.join(results)}\n}}\n")


def nsa_variant_mlir(v, name="attn"):
    """A function with one attn.nsa of variant `v` (its block-selection
    kernel; batch and token counts are placeholders)."""
    d, dt, hq, hkv = v["head_dim"], v["dtype"], v["q_heads"], v["kv_heads"]
    b, t, tc = 1, 128, 7
    args = [("%q", [b, t, hq, d]), ("%k", [b, t, hkv, d]), ("%v", [b, t, hkv, d]),
            ("%kc", [b, tc, hkv, d]), ("%vc", [b, tc, hkv, d]), ("%g", [b, t, hq, 3])]
    types = [cpu.tensor_type(shape, dt) for _, shape in args]
    out = cpu.tensor_type([b, t, hq, d], dt)
    attrs = (f"cmp_block = {v['cmp_block']} cmp_stride = {v['cmp_stride']} "
             f"sel_block = {v['sel_block']} num_selected = {v['num_selected']} "
             f"window = {v.get('window', 1)} initial_blocks = {v['initial_blocks']} "
             f"local_blocks = {v['local_blocks']} scale = {float(v['scale'])!r}")
    return (f"func.func @{name}({', '.join(f'{n}: {ty}' for (n, _), ty in zip(args, types))}) -> {out} {{\n"
            f"  %o = attn.nsa {', '.join(n for n, _ in args)} {attrs} : ({', '.join(types)}) -> {out}\n"
            f"  return %o : {out}\n}}\n")


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


def indexer_variant_mlir(v, name="attn"):
    """A function with one attn.lightning_indexer of variant `v` (its scores
    kernel; sizes and top_k are placeholders)."""
    hi, di, dt = v["heads"], v["head_dim"], v["dtype"]
    b, sq, sk = 1, 16, 64
    types = [cpu.tensor_type([b, sq, hi, di], dt), cpu.tensor_type([b, sk, di], dt),
             cpu.tensor_type([b, sq, hi], v["weights_dtype"])]
    out = cpu.tensor_type([b, sq, 8], "i32")
    mask = ""
    if v["mask"] == "causal":
        mask = " mask = <causal>"
    elif v["mask"] == "window":
        mask = f" mask = <window, left = {v['window_left']}, right = {v['window_right']}>"
    return (f"func.func @{name}(%q: {types[0]}, %k: {types[1]}, %w: {types[2]}) -> {out} {{\n"
            f"  %i = attn.lightning_indexer %q, %k, %w top_k = 8{mask} : ({', '.join(types)}) -> {out}\n"
            f"  return %i : {out}\n}}\n")


def sparse_variant_mlir(v, name="attn"):
    """A function with one attn.sparse_attention of variant `v` (block size,
    head dims, values as the keys' first columns or not, mask, scale,
    softcap, sinks, LSE): its lowering is the paged kernels it runs on."""
    d, dv, dt, bs = v["head_dim"], v["value_head_dim"], v["dtype"], v["block_size"]
    b, sq, sk, hq, hkv, n = 1, 8, 4 * bs, 16, 1, 4
    q, k = cpu.tensor_type([b, sq, hq, d], dt), cpu.tensor_type([b, sk, hkv, d], dt)
    vt, it = cpu.tensor_type([b, sk, hkv, dv], dt), cpu.tensor_type([b, sq, hkv, n], "i32")
    args = [("%q", q), ("%k", k)]
    body = ""
    if v.get("values") == "key_prefix":
        body = (f"  %v = tensor.extract_slice %k[0, 0, 0, 0] [{b}, {sk}, {hkv}, {dv}] [1, 1, 1, 1] "
                f": {k} to {vt}\n")
    else:
        args.append(("%v", vt))
    args.append(("%i", it))
    extra = f" block_size = {bs}"
    types = [q, k, vt, it]
    if v.get("sinks"):
        args.append(("%sinks", cpu.tensor_type([hq], v["sinks_dtype"])))
        types.append(args[-1][1])
        extra = " sinks(%sinks)" + extra
    if v.get("mask") == "causal":
        extra += " mask = <causal>"
    extra += f" scale = {float(v['scale'])!r}"
    if v.get("softcap") is not None:
        extra += f" softcap = {float(v['softcap'])!r}"
    results = [cpu.tensor_type([b, sq, hq, dv], dt)]
    if v.get("lse"):
        results.append(cpu.tensor_type([b, hq, sq], "f32"))
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    operands = "%q, %k, %v, %i"
    return (f"func.func @{name}({', '.join(f'{a}: {t}' for a, t in args)}) -> ({', '.join(results)}) {{\n"
            f"{body}"
            f"  {rn} = attn.sparse_attention {operands}{extra} : ({', '.join(types)}) -> ({', '.join(results)})\n"
            f"  return {rn} : {', '.join(results)}\n}}\n")


def variant_mlir(v, name="attn"):
    """A function with one attn.attention of variant `v` (sizes are only
    placeholders: the kernels take them at run time); paged variants
    (v["op"] == "paged_attention") go to paged_variant_mlir."""
    if v.get("op") == "paged_attention":
        return paged_variant_mlir(v, name)
    if v.get("op") == "gated_delta_rule":
        return gated_variant_mlir(v, name)
    if v.get("op") == "nsa":
        return nsa_variant_mlir(v, name)
    if v.get("op") == "sparse_attention":
        return sparse_variant_mlir(v, name)
    if v.get("op") == "lightning_indexer":
        return indexer_variant_mlir(v, name)
    d, dv, layout = v["head_dim"], v["value_head_dim"], v["layout"]
    b, h, s = 2, 2, 16
    def shape(dd):
        return [b, s, h, dd] if layout == "bshd" else [b, h, s, dd]
    dt = v["dtype"]
    args = [("%q", cpu.tensor_type(shape(d), dt)), ("%k", cpu.tensor_type(shape(d), dt)),
            ("%v", cpu.tensor_type(shape(dv), dt))]
    extra = ""
    if v.get("bias"):
        bshape = [1 if bc else n for bc, n in zip(v["bias_broadcast"], (b, h, s, s))]
        args.append(("%bias", cpu.tensor_type(bshape, v["bias_dtype"])))
        extra += " bias(%bias)"
    if v.get("sinks"):
        args.append(("%sinks", cpu.tensor_type([h], v["sinks_dtype"])))
        extra += " sinks(%sinks)"
    if layout == "bshd":
        extra += " layout = bshd"
    extra += _mask_scale_softcap(v)
    results = [cpu.tensor_type(shape(dv), dt)]
    if v.get("lse"):
        results.append(cpu.tensor_type([b, h, s], "f32"))
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    return (f"func.func @{name}({', '.join(f'{n}: {t}' for n, t in args)}) -> ({', '.join(results)}) {{\n"
            f"  {rn} = attn.attention %q, %k, %v{extra} : ({', '.join(t for _, t in args)}) -> ({', '.join(results)})\n"
            f"  return {rn} : {', '.join(results)}\n}}\n")


def compile_variants(variants, outdir, chip="sm_90a", attn_compile=None, kernel="auto",
                     extra=(), jobs=None):
    """Writes one bundle per distinct variant into `outdir`."""
    tool = attn_compile or os.environ.get("ATTN_COMPILE") or os.path.join(
        os.path.dirname(cpu.tools()[0]) if cpu.tools() else "build/bin", "attn-compile")
    # A bundle directory holds one build: stale kernels of an earlier build
    # (say, baseline ones) would otherwise be matched too.
    if os.path.isdir(outdir):
        for f in os.listdir(outdir):
            if f.endswith((".ptx", ".json")):
                os.remove(os.path.join(outdir, f))
    # One attn-compile run per variant, so that each manifest's
    # compile_seconds is that variant's own compile time.
    # jobs=1 keeps those times free of contention.
    def one(v):
        out = subprocess.run([tool, "-", "-o", outdir, f"--chip={chip}", "--no-fuse",
                              f"--kernel={kernel}", *extra],
                             input=variant_mlir(v).encode(), capture_output=True)
        if out.returncode:
            raise RuntimeError("attn-compile failed:\n" + out.stderr.decode())
        return out.stdout.decode().split()
    # An NSA variant stands for the kernels its GPU path runs.
    variants = [k for v in variants
                for k in (nsa_variants(v) if v.get("op") == "nsa" else [v])]
    unique = list({repr(sorted(v.items())): v for v in variants}.values())
    with concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        return [name for names in pool.map(one, unique) for name in names]


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
    ap.add_argument("--kernel", default="auto", choices=["baseline", "mma", "auto"])
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
