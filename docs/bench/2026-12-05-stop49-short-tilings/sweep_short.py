"""Issue 22 item 3: tilings of the sm_90a forward kernel at short and mid lengths.
Correctness of every directory's kernels on odd shapes against float32 SDPA, then
interleaved rounds timing every directory (and cuDNN) per shape, CUDA graphs of
10 calls over rotated input sets (L2 cold), TFLOP/s (causal halved).
usage: sweep_short.py ROUNDS DIR_A DIR_B ...   (A is the reference)"""
import math, statistics, sys, torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from attn import gpu
from attn.cudatime import median_ms

rounds = int(sys.argv[1])
dirs = sys.argv[2:]
names = [d.rstrip("/").split("/")[-1] for d in dirs]
torch.manual_seed(0)
print("correctness (max |out - ref|, bf16):", flush=True)
bad = 0
broken = set()
for bs, hq, hkv, sq, sk, d, causal in [(3, 8, 2, 1000, 1000, 128, True), (1, 2, 2, 100, 100, 128, False),
                                       (2, 4, 1, 300, 1200, 64, True), (4, 32, 32, 1000, 1000, 64, False),
                                       (1, 3, 3, 4500, 4500, 128, False), (2, 16, 16, 2048, 2048, 64, True),
                                       (1, 1, 1, 1, 1, 128, True), (2, 4, 4, 777, 777, 128, True),
                                       (1, 2, 1, 129, 4000, 64, True), (1, 2, 2, 9000, 9000, 128, True)]:
    q = torch.randn(bs, hq, sq, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(bs, hkv, sk, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(bs, hkv, sk, d, device="cuda", dtype=torch.bfloat16)
    rep = hq // hkv
    ref = F.scaled_dot_product_attention(q.float(), k.float().repeat_interleave(rep, 1),
                                         v.float().repeat_interleave(rep, 1),
                                         attn_mask=(torch.ones(sq, sk, dtype=torch.bool, device="cuda").tril(sk - sq)
                                                    if causal else None))
    errs = []
    for dd in dirs:
        try:
            out = gpu.attention(q, k, v, causal=causal, bundles=dd)
            torch.cuda.synchronize()
            errs.append((out.float() - ref).abs().max().item())
        except gpu.CudaError as e:  # a launch the tiling cannot make: dropped from the timing
            print(f"  {dd}: {e}", flush=True)
            broken.add(dd)
            errs.append(float("inf"))
    ok = all(e <= max(2 * errs[0], 1e-2) for dd, e in zip(dirs, errs) if dd not in broken)
    bad += not ok
    print(f"  b{bs} h{hq}/{hkv} {sq}x{sk} d{d} {'causal' if causal else 'none':<7} "
          + " ".join(f"{n}={e:.1e}" for n, e in zip(names, errs)) + ("" if ok else "  FAIL"), flush=True)
dirs = [dd for dd in dirs if dd not in broken]
names = [d.rstrip("/").split("/")[-1] for d in dirs]
SHAPES = [  # (label, batch, hq, hkv, seqlen, d, causal)
    ("d128 c 512x32", 32, 16, 16, 512, 128, True), ("d128 c 1kx16", 16, 16, 16, 1024, 128, True),
    ("d128 c 2kx8", 8, 16, 16, 2048, 128, True), ("d128 c 4kx4", 4, 16, 16, 4096, 128, True),
    ("d128 c 8kx2", 2, 16, 16, 8192, 128, True), ("llama c 1kx16", 16, 32, 8, 1024, 128, True),
    ("llama c 2kx8", 8, 32, 8, 2048, 128, True), ("llama c 4kx4", 4, 32, 8, 4096, 128, True),
    ("d64 c 512x32", 32, 32, 32, 512, 64, True), ("d64 c 1kx16", 16, 32, 32, 1024, 64, True),
    ("d64 c 2kx8", 8, 32, 32, 2048, 64, True), ("d64 c 4kx4", 4, 32, 32, 4096, 64, True),
    ("d64 c 8kx2", 2, 32, 32, 8192, 64, True), ("d64 c 16k", 1, 32, 32, 16384, 64, True),
    ("d64 n 1kx16", 16, 32, 32, 1024, 64, False), ("d64 n 2kx8", 8, 32, 32, 2048, 64, False),
    ("d128 n 1kx16", 16, 16, 16, 1024, 128, False), ("d128 n 16k", 1, 16, 16, 16384, 128, False),
]


def cudnn(q, k, v, causal):
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=k.shape[1] != q.shape[1])


print(f"{rounds} rounds, each a CUDA graph of 10 calls, median of 10; TFLOP/s; ratio = X / {names[0]} "
      "(median of per-round ratios)", flush=True)
print(f"{'shape':<15}" + "".join(f"{n:>10}" for n in names) + f"{'cuDNN':>8}" + "".join(f"{n:>9}" for n in names[1:])
      + f"{names[0] + '/cuDNN':>12}{'best/cuDNN':>11}")
for label, bs, hq, hkv, s, d, causal in SHAPES:
    fl = 4 * bs * hq * s * s * d / (2 if causal else 1)
    per = 2 * bs * s * d * (hq + 2 * hkv)
    n = max(2, math.ceil(2 * 50 * 2**20 / per))
    sets = [(torch.randn(bs, hq, s, d, device="cuda", dtype=torch.bfloat16),
             torch.randn(bs, hkv, s, d, device="cuda", dtype=torch.bfloat16),
             torch.randn(bs, hkv, s, d, device="cuda", dtype=torch.bfloat16)) for _ in range(n)]
    t = {x: [] for x in dirs}
    tc = []
    for r in range(rounds):
        for dd in dirs:
            t[dd].append(median_ms(lambda *x, dd=dd: gpu.attention(*x, causal=causal, bundles=dd), iters=10,
                                   graph=True, inputs=sets))
        if tc is not None:
            try:
                tc.append(median_ms(lambda *x: cudnn(*x, causal), iters=10, graph=True, inputs=sets))
            except Exception as e:
                print("  cuDNN:", type(e).__name__, str(e)[:80])
                tc = None
    tf = [fl / statistics.median(t[dd]) / 1e9 for dd in dirs]
    ratios = [statistics.median(a / b for a, b in zip(t[dirs[0]], t[dd])) for dd in dirs[1:]]
    C = fl / statistics.median(tc) / 1e9 if tc else float("nan")
    print(f"{label:<15}" + "".join(f"{x:10.1f}" for x in tf) + f"{C:8.1f}" + "".join(f"{x:9.3f}" for x in ratios)
          + f"{tf[0] / C:12.3f}{max(tf) / C:11.3f}", flush=True)
print("correctness failures:", bad)
