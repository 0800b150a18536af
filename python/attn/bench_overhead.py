# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Host overhead per call of attn's torch entry points against torch's own
(SDPA, whose backend torch picks), on the tiny shapes where the host is the
bottleneck, and the device time of the same calls, eager and replayed from
a CUDA graph:

    python3 -m attn.bench_overhead [--bundles DIR]

Host time (cudatime.host_us) is the time the calling thread spends per
call while the GPU is kept busy, so no call waits for the device. Rows:
attn.gpu.attention through the native fast path (attn/_fastpath.c) and
through the Python path (the fast path turned off, attn.gpu.set_fastpath),
attn.ops.attention (the torch.library custom op, as torch.compile and eager
models call it; fast path on), SDPA; paged decode
(attn.gpu.paged_attention, Llama-3.1-8B GQA 32/8, batch 8, 8k context,
pages of 16) against SDPA over the same keys laid out contiguously. Kernels
come from the bundle directory or are compiled on first use (attn.jit).
"""

import argparse
import os

import torch

from . import cudatime, gpu, ops


def _dense(b, hq, hkv, s, d=128, dtype=torch.bfloat16):
    q = torch.randn(b, hq, s, d, device="cuda", dtype=dtype)
    k = torch.randn(b, hkv, s, d, device="cuda", dtype=dtype)
    v = torch.randn(b, hkv, s, d, device="cuda", dtype=dtype)
    return q, k, v


def _paged(b=8, ctx=8192, page=16, hq=32, hkv=8, d=128, dtype=torch.bfloat16):
    pages = b * ctx // page
    table = torch.randperm(pages, device="cuda").view(b, ctx // page).to(torch.int32)
    lens = torch.full((b,), ctx, device="cuda", dtype=torch.int32)
    q = torch.randn(b, hq, d, device="cuda", dtype=dtype)
    kc = torch.randn(pages, page, hkv, d, device="cuda", dtype=dtype)
    vc = torch.randn(pages, page, hkv, d, device="cuda", dtype=dtype)
    kd = torch.randn(b, hkv, ctx, d, device="cuda", dtype=dtype)
    vd = torch.randn(b, hkv, ctx, d, device="cuda", dtype=dtype)
    return q, kc, vc, table, lens, kd, vd


def _python_path(fn):
    """fn with the native fast path turned off while it runs."""
    def call():
        previous = gpu.set_fastpath(False)
        try:
            return fn()
        finally:
            gpu.set_fastpath(previous)
    return call


def rows(bundles):
    """(name, [(label, fn)]) per shape; each fn launches one call."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = []
    for name, (b, hq, hkv, s) in (("causal 1x8x128, d128", (1, 8, 8, 128)),
                                  ("GQA 32/8, batch 8, 113 tokens", (8, 32, 8, 113))):
        q, k, v = _dense(b, hq, hkv, s)
        direct = lambda q=q, k=k, v=v: gpu.attention(q, k, v, causal=True, bundles=bundles)  # noqa: E731
        out.append((name, [
            ("attn.gpu.attention (fast)", direct),
            ("attn.gpu.attention (Python)", _python_path(direct)),
            ("attn.ops.attention", lambda q=q, k=k, v=v: ops.attention(q, k, v, causal=True)),
            ("SDPA", lambda q=q, k=k, v=v: sdpa(q, k, v, is_causal=True,
                                                enable_gqa=hq != hkv))]))
    q, kc, vc, table, lens, kd, vd = _paged()
    paged = lambda: gpu.paged_attention(q, kc, vc, table, lens, causal=True,  # noqa: E731
                                        bundles=bundles)
    out.append(("paged decode, GQA 32/8, batch 8, 8k", [
        ("attn.gpu.paged_attention (fast)", paged),
        ("attn.gpu.paged_attention (Python)", _python_path(paged)),
        ("attn.ops.paged_attention", lambda: ops.paged_attention(
            q, kc, vc, table, lens, causal=True)),
        ("SDPA (contiguous KV)", lambda: sdpa(q[:, :, None], kd, vd, enable_gqa=True))]))
    return out


def profile(bundles, calls=500):
    """Where the host time of each attn call goes."""
    import cProfile
    import pstats

    for name, fns in rows(bundles):
        for label, fn in fns:
            if label.startswith("SDPA"):
                continue
            fn()
            torch.cuda.synchronize()
            torch.cuda._sleep(int(4e9))  # no call waits for the device
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(calls):
                fn()
            prof.disable()
            torch.cuda.synchronize()
            print(f"--- {name}: {label}, {calls} calls")
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundles", default=os.environ.get("ATTN_BUNDLES", "build/bundles"))
    ap.add_argument("--profile", action="store_true",
                    help="profile the host side of each attn call (cProfile, the 12 "
                         "functions with the most time of their own) instead")
    args = ap.parse_args(argv)
    os.environ["ATTN_BUNDLES"] = args.bundles  # for the custom ops
    if args.profile:
        return profile(args.bundles)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    table = rows(args.bundles)
    for _, calls in table:  # the first call of each loads the fast path, JIT-compiles, ...
        for _, fn in calls:
            fn()
    print(f"fast path: {gpu.fastpath_status()}")
    print(f"{'shape':38} {'call':34} {'host us':>8} {'GPU us':>8} {'graph us':>9}")
    for name, calls in table:
        for label, fn in calls:
            host = cudatime.host_us(fn)
            device = cudatime.median_ms(fn, reps=10) * 1e3
            graph = cudatime.median_ms(fn, graph=True) * 1e3
            print(f"{name:38} {label:34} {host:8.1f} {device:8.1f} {graph:9.1f}")


if __name__ == "__main__":
    main()
