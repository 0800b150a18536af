"""Persistent schedule (issue 22 item 3): correctness of DIR_B's persistent
kernels on odd shapes against float32 SDPA, then interleaved A/B timing of
DIR_A (one block a tile) against DIR_B at short and mid lengths, with cuDNN's
SDPA (C) timed in the same rounds where it takes the shape.
usage: ab_short2.py DIR_A DIR_B [rounds]"""
import math, statistics, sys, torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from attn import gpu
from attn.cudatime import median_ms

a, b = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
torch.manual_seed(0)
print("correctness (max |out - ref|, bf16):")
for bs, hq, hkv, sq, sk, d, causal in [(3, 8, 2, 1000, 1000, 128, True), (1, 2, 2, 100, 100, 128, False),
                                       (16, 16, 16, 1024, 1024, 128, True), (2, 4, 1, 300, 1200, 64, True),
                                       (4, 32, 32, 1000, 1000, 64, False), (1, 3, 3, 4500, 4500, 128, False),
                                       (2, 16, 16, 2048, 2048, 64, True), (1, 1, 1, 1, 1, 128, True)]:
    q = torch.randn(bs, hq, sq, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(bs, hkv, sk, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(bs, hkv, sk, d, device="cuda", dtype=torch.bfloat16)
    rep = hq // hkv
    ref = F.scaled_dot_product_attention(q.float(), k.float().repeat_interleave(rep, 1),
                                         v.float().repeat_interleave(rep, 1),
                                         attn_mask=(torch.ones(sq, sk, dtype=torch.bool, device="cuda").tril(sk - sq)
                                                    if causal else None))
    errs = []
    for dd in (a, b):
        out = gpu.attention(q, k, v, causal=causal, bundles=dd)
        torch.cuda.synchronize()
        errs.append((out.float() - ref).abs().max().item())
    ok = errs[1] <= max(2 * errs[0], 1e-2)
    print(f"  b{bs} h{hq}/{hkv} {sq}x{sk} d{d} {'causal' if causal else 'none':<7} A {errs[0]:.2e} B {errs[1]:.2e} {'ok' if ok else 'FAIL'}")
SHAPES = [  # (label, batch, hq, hkv, seqlen, d, causal)
    ("d64 1k x16", 16, 32, 32, 1024, 64, False), ("d64 causal 1k x16", 16, 32, 32, 1024, 64, True),
    ("d64 causal 2k x8", 8, 32, 32, 2048, 64, True), ("d64 causal 4k x4", 4, 32, 32, 4096, 64, True),
    ("d128 1k x16", 16, 16, 16, 1024, 128, False), ("d128 causal 1k x16", 16, 16, 16, 1024, 128, True),
    ("d128 causal 2k x8", 8, 16, 16, 2048, 128, True), ("d128 causal 4k x4", 4, 16, 16, 4096, 128, True),
    ("d128 causal 8k x2", 2, 16, 16, 8192, 128, True), ("d64 causal 16k", 1, 32, 32, 16384, 64, True),
    ("llama GQA causal 1k x16", 16, 32, 8, 1024, 128, True), ("llama GQA causal 4k x4", 4, 32, 8, 4096, 128, True),
    ("d128 causal 16k", 1, 16, 16, 16384, 128, True),
]


def cudnn(q, k, v, causal):
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=k.shape[1] != q.shape[1])
print(f"A = {a}, B = {b}, {rounds} rounds of (A, B), median of 20 event timings each; TFLOP/s")
print(f"{'shape':<26}{'A med':>8}{'B med':>8}{'B/A':>7}{'min..max':>14}{'cuDNN':>8}{'B/cuDNN':>8}")
for label, bs, hq, hkv, s, d, causal in SHAPES:
    fl = 4 * bs * hq * s * s * d / (2 if causal else 1)
    per = 2 * bs * s * d * (hq + 2 * hkv)
    n = max(2, math.ceil(2 * 50 * 2**20 / per))
    sets = [(torch.randn(bs, hq, s, d, device="cuda", dtype=torch.bfloat16),
             torch.randn(bs, hkv, s, d, device="cuda", dtype=torch.bfloat16),
             torch.randn(bs, hkv, s, d, device="cuda", dtype=torch.bfloat16)) for _ in range(n)]
    ta, tb, tc = [], [], []
    try:
        cudnn(*sets[0], causal)
    except Exception:
        tc = None
    for r in range(rounds):
        ta.append(median_ms(lambda *x: gpu.attention(*x, causal=causal, bundles=a), iters=20, inputs=sets))
        tb.append(median_ms(lambda *x: gpu.attention(*x, causal=causal, bundles=b), iters=20, inputs=sets))
        if tc is not None:
            tc.append(median_ms(lambda *x: cudnn(*x, causal), iters=20, inputs=sets))
    ra = [x / y for x, y in zip(ta, tb)]
    A, B = fl / statistics.median(ta) / 1e9, fl / statistics.median(tb) / 1e9
    C = fl / statistics.median(tc) / 1e9 if tc else float("nan")
    print(f"{label:<26}{A:8.1f}{B:8.1f}{B / A:7.3f}{min(ra):7.3f}..{max(ra):.3f}{C:8.1f}{B / C:8.3f}", flush=True)
