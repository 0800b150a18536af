# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attn's kernels side by side with torch's attention backends on one GPU.

    # where the compiler is: the benchmark's bundles (records compile times)
    python3 -m attn.bundles -o build/bundles/bench --bench
    # on the GPU machine:
    ATTN_BUNDLES=build/bundles/bench python3 -m attn.bench -o build/bench

Shapes (FlashAttention's standard set): batch x seqlen = 16k tokens, hidden
2048 (heads = 2048 / head dim), head dim 64 / 128 / 256, seqlen 512 ... 16k,
causal and not, bf16 and fp16; plus Llama-3.1-8B GQA prefill (32 query / 8
KV heads, head dim 128, seqlen 4k and 8k, causal, batch 1) and DeepSeek-V3's
MLA prefill (128 heads, head dim 192 for Q·Kᵀ and 128 for V, seqlen 4k, 8k and
16k, causal, batch 1; FLOPs = 2 b h sq sk (d + dv), halved for causal); and
FP8 (e4m3, FlashAttention-3's forward: descales per batch and KV head, bf16
output) at head dims 128 and 256, causal and not, 4k to 16k, which only attn
runs (torch's attention backends take no FP8; its bf16 row is the same shape).

Backends: attn (the bundles), torch SDPA with FlashAttention-2, cuDNN and
memory-efficient kernels, and FlexAttention under torch.compile (its first
call, which compiles, is reported apart). FLOPs = 4 b h sq sk d, halved for
causal. Each timing is the median of device-event timings after warm-up,
rotating between input sets so that no run finds its inputs in L2.

Writes bench.csv, bench.png (if matplotlib is present) and prints a table.
attn's compile time per variant comes from the bundles' manifests (measured
where they were compiled, by attn-compile).
"""

import argparse
import csv
import math
import os
import sys
import time

HIDDEN, TOKENS = 2048, 16384
SEQLENS = (512, 1024, 2048, 4096, 8192, 16384)
HEAD_DIMS = (64, 128, 256)
BACKENDS = ("attn", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "flex")


def shapes(quick=False, seqlens=None):
    """(family, batch, hq, hkv, seqlen, d, causal, dtype, dv) of every
    measurement."""
    out = []
    dtypes = ("bf16",) if quick else ("bf16", "f16")
    seqlens = seqlens or ((4096, 16384) if quick else SEQLENS)
    for dtype in dtypes:
        for d in HEAD_DIMS:
            for causal in (False, True):
                for s in seqlens:
                    h = HIDDEN // d
                    out.append((f"d{d}{'-causal' if causal else ''}", TOKENS // s, h, h, s, d,
                                causal, dtype, d))
    for s in (4096, 8192):
        out.append(("llama3.1-8b-gqa", 1, 32, 8, s, 128, True, "bf16", 128))
    for s in (4096, 8192, 16384):
        out.append(("deepseek-mla-prefill", 1, 128, 128, s, 192, True, "bf16", 128))
    for d in (128, 256):
        for causal in (False, True):
            for s in (4096, 8192, 16384):
                h = HIDDEN // d
                out.append((f"fp8-d{d}{'-causal' if causal else ''}", TOKENS // s, h, h, s, d,
                            causal, "f8e4m3", d))
    return out


def variants():
    """The attn kernel variants the shapes need (bundle variants, bhsd)."""
    seen, out = set(), []
    for _, _, _, _, _, d, causal, dtype, dv in shapes():
        key = (d, causal, dtype, dv)
        if key in seen:
            continue
        seen.add(key)
        out.append({"dtype": dtype, "head_dim": d, "value_head_dim": dv, "layout": "bhsd",
                    "mask": "causal" if causal else "none", "scale": 1 / math.sqrt(d),
                    "softcap": None, "bias": False, "sinks": False, "lse": False})
        if dtype == "f8e4m3":
            out[-1].update(descale="head", out_dtype="bf16")
    return out


def flops(b, hq, s, d, causal, dv=None):
    return 2 * b * hq * s * s * (d + (d if dv is None else dv)) * (0.5 if causal else 1.0)


def runners(bundles, causal, gqa, descales=None):
    """backend -> (setup() -> fn(q, k, v)) for one shape; a runner raises
    where the backend does not take the shape. `descales`: FP8's, which only
    attn takes."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from . import gpu

    def sdpa(backend):
        def fn(q, k, v):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
        return fn

    def flex():
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        # Every shape compiles anew; past dynamo's recompile limit (8) it
        # would silently fall back to the slow eager path.
        torch._dynamo.config.cache_size_limit = 256
        if hasattr(torch._dynamo.config, "recompile_limit"):
            torch._dynamo.config.recompile_limit = 256
        compiled = torch.compile(flex_attention)
        masks = {}

        def fn(q, k, v):
            key = (q.shape[2], k.shape[2])
            if causal and key not in masks:
                masks[key] = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None,
                                               key[0], key[1], device=q.device)
            return compiled(q, k, v, block_mask=masks.get(key), enable_gqa=gqa)
        return fn

    if descales is not None:
        def no_fp8(q, k, v):
            raise NotImplementedError("no FP8 attention")
        fp8 = lambda q, k, v: gpu.attention(q, k, v, causal=causal, bundles=bundles,
                                            q_descale=descales[0], k_descale=descales[1],
                                            v_descale=descales[2])
        return {"attn": fp8, **{b: no_fp8 for b in BACKENDS[1:]}}
    return {
        "attn": lambda q, k, v: gpu.attention(q, k, v, causal=causal, bundles=bundles),
        "sdpa-flash": sdpa(SDPBackend.FLASH_ATTENTION),
        "sdpa-cudnn": sdpa(SDPBackend.CUDNN_ATTENTION),
        "sdpa-efficient": sdpa(SDPBackend.EFFICIENT_ATTENTION),
        "flex": flex(),
    }


def run(args):
    import torch

    from . import gpu
    from .cudatime import median_ms

    name = torch.cuda.get_device_name()
    l2 = 50 * 2**20
    rows = []
    compile_rows = []
    kernels = gpu.load_bundles(args.bundles)
    for k in kernels:
        if "compile_seconds" in k.manifest:
            compile_rows.append((k.manifest["entry"], k.manifest["compile_seconds"]))
    todo = [s for s in shapes(args.quick, args.seqlens)
            if not args.family or any(f in s[0] for f in args.family)]
    for family, b, hq, hkv, s, d, causal, dtype, dv in todo:
        fp8 = dtype == "f8e4m3"
        tdtype = torch.bfloat16 if dtype == "bf16" else torch.float16
        per_set = (1 if fp8 else 2) * b * ((hq + hkv) * d + hkv * dv) * s
        nsets = max(2, math.ceil(2 * l2 / per_set))
        sets = [tuple(torch.randn(b, h, s, width, device="cuda").to(
                          torch.float8_e4m3fn if fp8 else tdtype)
                      for h, width in ((hq, d), (hkv, d), (hkv, dv))) for _ in range(nsets)]
        descales = None
        if fp8:
            descales = tuple(torch.ones(b, hkv, device="cuda") for _ in range(3))
        ref = attn_out = attn_row = None
        fl = flops(b, hq, s, d, causal, dv)
        for backend, fn in runners(args.bundles, causal, hq != hkv, descales).items():
            if args.backends and backend not in args.backends:
                continue
            row = dict(gpu=name, family=family, dtype=dtype, batch=b, hq=hq, hkv=hkv, seqlen=s,
                       head_dim=d, value_head_dim=dv, causal=causal, backend=backend, ms="", tflops="",
                       first_call_s="", max_err="", note="")
            try:
                t0 = time.perf_counter()
                out = fn(*sets[0])
                torch.cuda.synchronize()
                row["first_call_s"] = f"{time.perf_counter() - t0:.3f}"
                if ref is None and backend != "attn":
                    ref = out.float()
                if backend == "attn":
                    attn_out, attn_row = out.float(), row
                ms = median_ms(fn, iters=args.iters, inputs=sets)
                row["ms"] = f"{ms:.4f}"
                row["tflops"] = f"{fl / ms / 1e9:.1f}"
            except Exception as e:  # a backend that does not take the shape
                row["note"] = (type(e).__name__ + ": " + str(e).splitlines()[0])[:120]
            rows.append(row)
        if ref is not None and attn_out is not None:
            # attn's output against the first torch backend that ran.
            attn_row["max_err"] = f"{(attn_out - ref).abs().max().item():.2e}"
        del sets
        torch.cuda.empty_cache()
    return name, rows, compile_rows


def write(outdir, name, rows, compile_rows, backends=BACKENDS):
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "bench.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(outdir, "compile_times.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kernel", "attn_compile_seconds"])
        w.writerows(compile_rows)
    # Table: one line per shape, TFLOP/s per backend.
    keyed = {}
    for r in rows:
        k = (r["family"], r["dtype"], r["batch"], r["hq"], r["hkv"], r["seqlen"], r["head_dim"])
        keyed.setdefault(k, {})[r["backend"]] = r
    lines = [f"{name}: TFLOP/s (median of device-event timings; '-' = backend refused the shape)",
             f"{'shape':<34}" + "".join(f"{b:>15}" for b in backends) + f"{'attn/best':>11}"]
    for k, by in keyed.items():
        family, dtype, b, hq, hkv, s, d = k
        vals = {bk: float(by[bk]["tflops"]) for bk in by if by[bk]["tflops"]}
        others = [v for bk, v in vals.items() if not bk.startswith("attn")]
        ratio = f"{vals['attn'] / max(others):.2f}" if "attn" in vals and others else "-"
        lines.append(f"{family + ' ' + dtype + f' b{b} s{s}':<34}"
                     + "".join(f"{(by[bk]['tflops'] if bk in by and by[bk]['tflops'] else '-'):>15}"
                               for bk in backends) + f"{ratio:>11}")
    flex_first = [float(r["first_call_s"]) for r in rows if r["backend"] == "flex" and r["first_call_s"]]
    if compile_rows:
        ct = [c for _, c in compile_rows]
        lines.append(f"attn compile time per variant (attn-compile, CPU): median {sorted(ct)[len(ct) // 2]:.3f} s, "
                     f"max {max(ct):.3f} s over {len(ct)} variants")
    if flex_first:
        lines.append(f"FlexAttention first call (torch.compile) per shape: median "
                     f"{sorted(flex_first)[len(flex_first) // 2]:.2f} s, max {max(flex_first):.2f} s")
    table = "\n".join(lines)
    with open(os.path.join(outdir, "bench.txt"), "w") as f:
        f.write(table + "\n")
    print(table)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    families = sorted({(r["family"], r["dtype"]) for r in rows})
    cols = 4
    nrow = math.ceil(len(families) / cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(4.5 * cols, 3.6 * nrow), squeeze=False)
    for ax, (fam, dt) in zip(axes.flat, families):
        for bk in backends:
            pts = sorted((int(r["seqlen"]), float(r["tflops"])) for r in rows
                         if r["family"] == fam and r["dtype"] == dt and r["backend"] == bk and r["tflops"])
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=bk)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{fam} {dt}")
        ax.set_xlabel("seqlen")
        ax.set_ylabel("TFLOP/s")
    for ax in list(axes.flat)[len(families):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(name)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "bench.png"), dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="build/bench")
    ap.add_argument("--bundles", default=os.environ.get("ATTN_BUNDLES", "build/bundles/bench"))
    ap.add_argument("--quick", action="store_true", help="bf16, seqlens 4k and 16k only")
    ap.add_argument("--family", action="append", help="only shape families containing this")
    ap.add_argument("--seqlens", type=int, nargs="*", help="only these sequence lengths")
    ap.add_argument("--backends", nargs="*", help="only these backends")
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args(argv)
    name, rows, compile_rows = run(args)
    write(args.output, name, rows, compile_rows)


if __name__ == "__main__":
    sys.exit(main())
