# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Host overhead per call of attn's torch entry points against torch's own
(SDPA, whose backend torch picks), on the tiny shapes where the host is the
bottleneck, and the device time of the same calls, eager and replayed from
a CUDA graph:

    python3 -m attn.bench_overhead [--bundles DIR] [--parts | --profile]

Host time (cudatime.host_us, the best of three loops of 200 calls) is the
time the calling thread spends per call while the GPU is kept busy, so no
call waits for the device. Rows:
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


def parts(bundles):
    """What the torch operations a fast call makes cost on this host, next
    to the calls themselves: the attribute reads of one input tensor, each
    allocation of the calls (by shape) and one plain kernel launch
    (torch's own, the smallest there is)."""
    q, k, v = _dense(1, 8, 8, 128)
    gq, gk, gv = _dense(8, 32, 8, 113)
    pq, kc, vc, table, lens, _, _ = _paged()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    splits = gpu.num_splits(8, 8, 1, 8192, sms, 2)
    f32 = torch.float32
    dense = lambda: gpu.attention(q, k, v, causal=True, bundles=bundles)  # noqa: E731
    gqa = lambda: gpu.attention(gq, gk, gv, causal=True, bundles=bundles)  # noqa: E731
    paged = lambda: gpu.paged_attention(pq, kc, vc, table, lens, causal=True,  # noqa: E731
                                        bundles=bundles)

    def reads(t=kc):
        t.is_cuda, t.shape, t.dtype, t.get_device(), t.is_contiguous(), t.data_ptr()
    small = torch.zeros(1, device="cuda")
    items = [
        ("attn.gpu.attention, causal 1x8x128 (fast)", dense),
        ("attn.gpu.attention, GQA 32/8 b8 113 (fast)", gqa),
        ("attn.gpu.paged_attention, b8 8k (fast)", paged),
        ("one tensor's six reads, from Python", reads),
        ("q.new_empty 1x8x128x128 bf16 (256 KB)", lambda: q.new_empty((1, 8, 128, 128))),
        ("q.new_empty 8x32x113x128 bf16 (7.4 MB)", lambda: gq.new_empty((8, 32, 113, 128))),
        ("q.new_empty 8x32x128 bf16 (paged out)", lambda: pq.new_empty((8, 32, 128))),
        (f"q.new_empty o_part {splits}x8x1x32x128 f32",
         lambda: pq.new_empty((splits, 8, 1, 32, 128), dtype=f32)),
        (f"q.new_empty lse_part {splits}x8x1x32 f32",
         lambda: pq.new_empty((splits, 8, 1, 32), dtype=f32)),
        ("torch.cuda.current_stream / device", lambda: (torch._C._cuda_getDevice(),
                                                        torch._C._cuda_getCurrentRawStream(0))),
        ("small.add_(1) (one torch kernel launch)", lambda: small.add_(1)),
    ]
    for _, fn in items:
        fn()
    print(f"fast path: {gpu.fastpath_status()}")
    print(f"{'operation':50} {'host us':>8}")
    for label, fn in items:
        best = min(cudatime.host_us(fn, iters=300) for _ in range(3))
        print(f"{label:50} {best:8.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundles", default=os.environ.get("ATTN_BUNDLES", "build/bundles"))
    ap.add_argument("--profile", action="store_true",
                    help="profile the host side of each attn call (cProfile, the 12 "
                         "functions with the most time of their own) instead")
    ap.add_argument("--parts", action="store_true",
                    help="the host time of the torch operations a fast call makes, by part")
    args = ap.parse_args(argv)
    os.environ["ATTN_BUNDLES"] = args.bundles  # for the custom ops
    if args.profile:
        return profile(args.bundles)
    if args.parts:
        return parts(args.bundles)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    table = rows(args.bundles)
    for _, calls in table:  # the first call of each loads the fast path, JIT-compiles, ...
        for _, fn in calls:
            fn()
    print(f"fast path: {gpu.fastpath_status()}")
    print(f"{'shape':38} {'call':34} {'host us':>8} {'GPU us':>8} {'graph us':>9}")
    for name, calls in table:
        for label, fn in calls:
            # The best of three loops: the host is shared, and other work on
            # it only ever adds time (one loop's spread was up to 1.6x).
            host = min(cudatime.host_us(fn) for _ in range(3))
            device = cudatime.median_ms(fn, reps=10) * 1e3
            graph = cudatime.median_ms(fn, graph=True) * 1e3
            print(f"{name:38} {label:34} {host:8.1f} {device:8.1f} {graph:9.1f}")


if __name__ == "__main__":
    main()
