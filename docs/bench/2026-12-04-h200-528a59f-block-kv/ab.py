"""Interleaved A/B of two bundle directories on the same shapes: rounds of
(A, B) timings in one process, so that clock drift hits both alike.
usage: ab.py DIR_A DIR_B [rounds]"""
import math, statistics, sys, torch
from attn import gpu
from attn.cudatime import median_ms

a, b = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
SHAPES = [  # (label, batch, heads, seqlen, d, causal)
    ("d128 1k x16", 16, 16, 1024, 128, False), ("d128 2k x8", 8, 16, 2048, 128, False),
    ("d128 4k x4", 4, 16, 4096, 128, False), ("d128 8k x2", 2, 16, 8192, 128, False),
    ("d128 16k", 1, 16, 16384, 128, False), ("d128 16k causal (same PTX)", 1, 16, 16384, 128, True),
]
print(f"A = {a}, B = {b}, {rounds} rounds of (A, B), median of 20 event timings each; TFLOP/s")
print(f"{'shape':<28}{'A med':>8}{'B med':>8}{'B/A':>7}{'B/A per-round min..max':>26}")
for label, bs, h, s, d, causal in SHAPES:
    fl = 4 * bs * h * s * s * d / (2 if causal else 1)
    per = 2 * bs * 3 * h * s * d
    n = max(2, math.ceil(2 * 50 * 2**20 / per))
    sets = [tuple(torch.randn(bs, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            for _ in range(n)]
    ref = torch.nn.functional.scaled_dot_product_attention(*[t.float() for t in sets[0]], is_causal=causal)
    for dd in (a, b):
        err = (gpu.attention(*sets[0], causal=causal, bundles=dd).float() - ref).abs().max().item()
        assert err < 2e-2, (dd, label, err)
    ta, tb = [], []
    for r in range(rounds):
        ta.append(median_ms(lambda *x: gpu.attention(*x, causal=causal, bundles=a), iters=20, inputs=sets))
        tb.append(median_ms(lambda *x: gpu.attention(*x, causal=causal, bundles=b), iters=20, inputs=sets))
    ra = [ta[i] / tb[i] for i in range(rounds)]
    fa, fb = fl / statistics.median(ta) / 1e9, fl / statistics.median(tb) / 1e9
    print(f"{label:<28}{fa:>8.1f}{fb:>8.1f}{fb / fa:>7.3f}{min(ra):>13.3f}..{max(ra):.3f}")
    del sets
    torch.cuda.empty_cache()
