# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Run-time values against values compiled in: does a kernel that takes its
scale, softcap and window extents as arguments lose time against one with
them compiled in (issue 21: no more than 2%)?

    # where the compiler is: the same variants twice
    python3 -m attn.bundles -o build/bundles-values --values-bench
    python3 -m attn.bundles -o build/bundles-values-specialized --values-bench --specialize
    # on the GPU machine:
    python3 -m attn.bench_values --runtime build/bundles-values \\
        --specialized build/bundles-values-specialized

Rows: dense prefill on wgmma (head dim 64/128/256, causal and not, 4k and
16k tokens, 16k tokens in all, hidden 2048), a sliding window and a softcap
(Gemma-2-like) at head dim 128, and a paged GQA decode (Llama-3.1-8B heads,
batch 8, 8k context). Each row times both bundle directories alternately,
`--rounds` times, and reports the medians and their ratio; the spread of the
ratio over the rounds says what difference is noise.
"""

import argparse
import math
import os
import statistics

# (name, batch, q heads, kv heads, seqlen, head dim, causal, window, softcap)
_DENSE = [(f"d{d} {'causal' if c else 'full'} {s // 1024}k", 16384 // s, 2048 // d,
           2048 // d, s, d, c, None, None)
          for d in (64, 128, 256) for c in (True, False) for s in (4096, 16384)]
_DENSE += [("d128 window (1024, 0) 8k", 2, 16, 16, 8192, 128, False, (1024, 0), None),
           ("d128 softcap 50 causal 8k", 2, 16, 16, 8192, 128, True, None, 50.0),
           ("GQA 32/8 d128 causal 8k", 1, 32, 8, 8192, 128, True, None, None)]
# Paged decode: batch, q heads, kv heads, context, page, head dim.
_PAGED = [("paged GQA 32/8 b8 8k", 8, 32, 8, 8192, 16, 128)]


def _dense_variant(d, causal, window, softcap):
    mask = "window" if window else ("causal" if causal else "none")
    v = {"dtype": "bf16", "head_dim": d, "value_head_dim": d, "layout": "bhsd", "mask": mask,
         "scale": 1 / math.sqrt(d), "softcap": softcap, "bias": False, "sinks": False,
         "lse": False}
    if window:
        v["window_left"], v["window_right"] = window
    return v


def variants():
    """The bundle variants of the rows (each once), values as the calls pass them."""
    out = []
    for _, _, _, _, _, d, causal, window, softcap in _DENSE:
        v = _dense_variant(d, causal, window, softcap)
        if v not in out:
            out.append(v)
    for _, _, _, _, _, page, d in _PAGED:
        out.append({"op": "paged_attention", "dtype": "bf16", "head_dim": d,
                    "value_head_dim": d, "page_size": page, "mask": "causal",
                    "scale": 1 / math.sqrt(d), "cache_layout": "nhd", "table_dtype": "i32",
                    "lens_dtype": "i32", "softcap": None, "sinks": False, "lse": False,
                    "values": "separate"})
    return out


def _dense_call(gpu, row):
    import torch
    _, b, hq, hkv, s, d, causal, window, softcap = row
    q = torch.randn(b, hq, s, d, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(b, hkv, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    return lambda dirs: gpu.attention(q, k, v, causal=causal and not window, window=window,
                                      softcap=softcap, bundles=dirs)


def _paged_call(gpu, row):
    import torch
    _, b, hq, hkv, ctx, page, d = row
    total = b * ctx // page
    kc, vc = (torch.randn(total, page, hkv, d, device="cuda", dtype=torch.bfloat16)
              for _ in range(2))
    table = torch.randperm(total, device="cuda").to(torch.int32).view(b, ctx // page)
    lens = torch.full((b,), ctx, dtype=torch.int32, device="cuda")
    q = torch.randn(b, hq, d, device="cuda", dtype=torch.bfloat16)
    return lambda dirs: gpu.paged_attention(q, kc, vc, table, lens, causal=True, bundles=dirs)


def _check(gpu, dirs, runtime):
    """Every kernel of `dirs` that has values takes them at run time (or none
    does); a paged split's combine kernel has none."""
    kernels = [k for k in gpu.load_bundles(dirs) if "scale" in k.variant]
    wrong = [k for k in kernels if ("runtime" in k.variant.values()) != runtime]
    if not kernels or wrong:
        raise SystemExit(f"{dirs}: expected only kernels with values "
                         f"{'at run time' if runtime else 'compiled in'}, "
                         f"found {len(wrong)} of {len(kernels)} otherwise")


def main(argv=None):
    import torch

    from . import gpu
    from .cudatime import median_ms

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtime", required=True, help="bundles with run-time values")
    ap.add_argument("--specialized", required=True, help="the same, values compiled in")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=10, help="back-to-back calls per measurement")
    args = ap.parse_args(argv)
    # No compile on first use: a call the directories cannot serve must fail,
    # not time a kernel compiled with other values.
    os.environ["ATTN_COMPILE"] = os.devnull
    _check(gpu, args.runtime, True)
    _check(gpu, args.specialized, False)

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; median ms of "
          f"{args.rounds} rounds x 20 x {args.reps} back-to-back calls per directory")
    print(f"{'row':30} {'runtime ms':>11} {'specialized ms':>15} {'ratio':>7} "
          f"{'ratio range':>15}")
    ratios = []
    rows = [(r, _dense_call) for r in _DENSE] + [(r, _paged_call) for r in _PAGED]
    for row, make in rows:
        call = make(gpu, row)
        # Both directories must have served the call: a missing bundle raises.
        ref_rt, ref_sp = call(args.runtime), call(args.specialized)
        ref_rt = ref_rt[0] if isinstance(ref_rt, tuple) else ref_rt
        ref_sp = ref_sp[0] if isinstance(ref_sp, tuple) else ref_sp
        diff = (ref_rt.float() - ref_sp.float()).abs().max().item()
        rt, sp = [], []
        for _ in range(args.rounds):
            rt.append(median_ms(lambda: call(args.runtime), reps=args.reps))
            sp.append(median_ms(lambda: call(args.specialized), reps=args.reps))
        r = [a / b for a, b in zip(rt, sp)]
        ratio = statistics.median(rt) / statistics.median(sp)
        ratios.append(ratio)
        print(f"{row[0]:30} {statistics.median(rt):11.3f} {statistics.median(sp):15.3f} "
              f"{ratio:7.3f} {min(r):7.3f}-{max(r):.3f}"
              + (f"  max |diff| {diff:.3g}" if diff else ""))
        torch.cuda.empty_cache()
    print(f"runtime/specialized over {len(ratios)} rows: median "
          f"{statistics.median(ratios):.3f}, worst {max(ratios):.3f}")


if __name__ == "__main__":
    main()
