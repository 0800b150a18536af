# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The attention backward: attn's kernels side by side with torch's.

    # where the compiler is:
    python3 -m attn.bundles -o build/bundles-bwd --variants-from python/attn/bench_backward.py
    # on the GPU machine:
    python3 -m attn.bench_backward --bundles build/bundles-bwd -o build/bench-bwd

Shapes: FlashAttention's standard set (batch x seqlen = 16k tokens, hidden
2048) at head dims 64 and 128, causal and not, bf16, seqlens 1k, 4k and 8k by
default; Llama-3.1-8B GQA (32/8 heads, head dim 128, causal, batch 1). Each
backend runs the forward once with autograd recording, then the timed region
is the backward alone (torch.autograd.grad of the output with a fixed dO;
--reps N times it N calls back to back, which hides the host's overhead):
for attn, attn.gpu.attention's autograd, which runs attention_backward's
default kernels: with torch's deterministic algorithms off (the default),
the non-deterministic set (on an H200, head dims 64 and 128: dQ fused into
the wgmma dK/dV kernel, each tile's share added by bulk reductions; past
that the wgmma dQ and dK/dV kernels); "attn-det" the deterministic set
pinned (attention_backward(deterministic=True): the wgmma dQ kernel, then
dK/dV); "attn-atomic" the fused set with dQ added by f32 atomics;
"attn-mma" the deterministic set with the mma.sync kernels pinned
(kernel="mma", what sm_80 runs). The max_err column of attn and
attn-atomic is their largest gradient difference from attn-det's,
relative to that gradient's largest magnitude. TFLOP/s = 2.5 x the forward's FLOPs (4 b h sq sk d, halved for
causal), FlashAttention's convention. Backends as attn.bench (SDPA's flash,
cuDNN and memory-efficient kernels, FlexAttention compiled once per shape,
its first call reported apart). Writes bench.csv, bench.txt (and bench.png).
"""

import argparse
import math
import os
import sys
import time

try:
    from . import bench
except ImportError:  # loaded by path: python -m attn.bundles --variants-from
    from attn import bench

SEQLENS = (1024, 4096, 8192)
HEAD_DIMS = (64, 128)


def shapes(seqlens=None):
    """(family, batch, hq, hkv, seqlen, d, causal, dtype, dv)."""
    out = []
    for d in HEAD_DIMS:
        for causal in (False, True):
            for s in seqlens or SEQLENS:
                h = bench.HIDDEN // d
                out.append((f"d{d}{'-causal' if causal else ''}", bench.TOKENS // s, h, h, s, d,
                            causal, "bf16", d))
    for s in (4096, 8192):
        if not seqlens or s in seqlens:
            out.append(("llama3.1-8b-gqa", 1, 32, 8, s, 128, True, "bf16", 128))
    # Head dims past 128: DeepSeek's MLA prefill (192/128, 16 heads of its
    # 128) and 256 (Gemma), causal, 16k tokens a batch.
    for s in (4096, 8192):
        if not seqlens or s in seqlens:
            out.append(("mla-d192-dv128-causal", bench.TOKENS // s, 16, 16, s, 192, True,
                        "bf16", 128))
            out.append(("d256-causal", bench.TOKENS // s, 8, 8, s, 256, True, "bf16", 256))
    return out


def variants():
    """The forward (with its LSE) and backward variants the shapes need."""
    seen, out = set(), []
    for _, _, _, _, _, d, causal, dtype, dv in shapes():
        if (d, dv, causal) in seen:
            continue
        seen.add((d, dv, causal))
        v = {"dtype": dtype, "head_dim": d, "value_head_dim": dv, "layout": "bhsd",
             "mask": "causal" if causal else "none", "scale": 1 / math.sqrt(d),
             "softcap": None, "bias": False, "sinks": False}
        out += [dict(v, lse=True), dict(v, op="attention_grad"),
                dict(v, op="attention_grad", deterministic=False),
                dict(v, op="attention_grad", deterministic=False, dq_reduce="atomic")]
        if d <= 128 and dv <= 128:  # what mma.sync takes
            out.append(dict(v, op="attention_grad", kernel="mma"))
    return out


def pinned_runner(bundles, causal, kernel, deterministic=None, dq_reduce=None):
    """fn(q, k, v) -> out whose backward is attention_backward with the
    dK/dV kernel `kernel` pinned (None: the default) and `deterministic`
    (the forward is attn's, with its LSE)."""
    import torch

    from . import gpu

    class Attention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):
            out, lse = gpu.attention(q, k, v, causal=causal, return_lse=True, bundles=bundles)
            ctx.save_for_backward(q, k, v, out, lse)
            return out

        @staticmethod
        def backward(ctx, do):
            q, k, v, out, lse = ctx.saved_tensors
            return gpu.attention_backward(do.contiguous(), q, k, v, out, lse, causal=causal,
                                          bundles=bundles, kernel=kernel,
                                          deterministic=deterministic, dq_reduce=dq_reduce)

    return Attention.apply


def run(args):
    import torch

    from .cudatime import median_ms

    name = torch.cuda.get_device_name()
    # The timed region re-runs one graph's backward (retain_graph=True),
    # which torch.compile's backward (Flex) refuses with donated buffers.
    import torch._functorch.config as functorch_config
    functorch_config.donated_buffer = False
    rows = []
    for family, b, hq, hkv, s, d, causal, dtype, dv in shapes(args.seqlens):
        if args.family and not any(f in family for f in args.family):
            continue
        tdtype = torch.bfloat16
        q = torch.randn(b, hq, s, d, device="cuda", dtype=tdtype, requires_grad=True)
        k = torch.randn(b, hkv, s, d, device="cuda", dtype=tdtype, requires_grad=True)
        v = torch.randn(b, hkv, s, dv, device="cuda", dtype=tdtype, requires_grad=True)
        do = torch.randn(b, hq, s, dv, device="cuda", dtype=tdtype)
        fl = 2.5 * bench.flops(b, hq, s, d, causal, dv)
        runners = bench.runners(args.bundles, causal, hq != hkv)
        # attn-det first: its gradients are the others' reference.
        runners = dict({"attn-det": pinned_runner(args.bundles, causal, None,
                                                  deterministic=True)}, **runners)
        runners.update({"attn-mma": pinned_runner(args.bundles, causal, "mma",
                                                  deterministic=True),
                        "attn-atomic": pinned_runner(
                            args.bundles, causal, None, deterministic=False,
                            dq_reduce="atomic")})
        reference = None  # attn-det's gradients, for the max_err of the others
        for backend, fn in runners.items():
            if args.backends and backend not in args.backends:
                continue
            row = dict(gpu=name, family=family, dtype=dtype, batch=b, hq=hq, hkv=hkv, seqlen=s,
                       head_dim=d, value_head_dim=dv, causal=causal, backend=backend, ms="",
                       tflops="", first_call_s="", max_err="", note="")
            try:
                t0 = time.perf_counter()
                out = fn(q, k, v)
                grads = torch.autograd.grad(out, (q, k, v), do, retain_graph=True)
                torch.cuda.synchronize()
                if backend == "attn-det":
                    reference = grads
                elif backend in ("attn", "attn-atomic") and reference is not None:
                    row["max_err"] = "%.3g" % max(
                        ((g.float() - r.float()).abs().max() / r.float().abs().max()).item()
                        for g, r in zip(grads, reference))
                del grads
                row["first_call_s"] = f"{time.perf_counter() - t0:.3f}"
                ms = median_ms(lambda: torch.autograd.grad(out, (q, k, v), do, retain_graph=True),
                               iters=args.iters, reps=args.reps)
                row["ms"] = f"{ms:.4f}"
                row["tflops"] = f"{fl / ms / 1e9:.1f}"
                del out
            except Exception as e:  # a backend that does not take the shape
                row["note"] = (type(e).__name__ + ": " + str(e).splitlines()[0])[:120]
            rows.append(row)
        del q, k, v, do
        torch.cuda.empty_cache()
    return name, rows, []


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="build/bench-bwd")
    ap.add_argument("--bundles", default=os.environ.get("ATTN_BUNDLES", "build/bundles-bwd"))
    ap.add_argument("--family", action="append", help="only shape families containing this")
    ap.add_argument("--seqlens", type=int, nargs="*", help="only these sequence lengths")
    ap.add_argument("--backends", nargs="*", help="only these backends")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--reps", type=int, default=1,
                    help="back-to-back backward calls a measurement: 1 (the default) counts "
                         "the host's launch overhead the GPU waits for, more hide it behind "
                         "queued work")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    name, rows, compile_rows = run(args)
    reps = f", {args.reps} calls a measurement" if args.reps > 1 else ""
    title = f"{name} (backward{reps})"
    bench.write(args.output, title, rows, compile_rows,
                backends=("attn", "attn-det", "attn-mma", "attn-atomic")
                + bench.BACKENDS[1:])


if __name__ == "__main__":
    sys.exit(main())
