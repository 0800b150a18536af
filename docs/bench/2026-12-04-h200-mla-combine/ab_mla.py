"""Interleaved A/B of two bundle directories' MLA absorbed decode (one latent
KV head of 576, values its first 512 columns, pages of 64, scale 0.1352):
rounds of (A, B) CUDA-graph timings in one process, so that clock drift hits
both alike. Each directory's output is checked against a float32 reference
of the gathered cache first.
Then GQA decode (32 query heads on 8 KV heads of 128, pages of 16, causal,
one token), timed and checked the same way.
usage: ab_mla.py DIR_A DIR_B [rounds]
AB_NOCHECK=1 skips the check: for kernels built to be timed only."""
import os, statistics, sys, torch
from attn import gpu
from attn.cudatime import median_ms

a, b = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
D, DV, PAGE, SCALE = 576, 512, 64, 0.1352
SHAPES = [(128, 64, 8192), (128, 64, 16384), (128, 64, 4096), (128, 32, 16384),
          (128, 8, 16384), (128, 1, 16384), (16, 64, 16384), (16, 64, 8192), (16, 1, 4096)]
print(f"A = {a}, B = {b}, {rounds} rounds of (A, B), median of 20 graph replays each")
print(f"{'heads batch ctx':<18}{'A TF/s':>8}{'B TF/s':>8}{'B/A':>7}{'min..max':>14}{'B TB/s':>8}{'B us':>8}")
torch.manual_seed(0)
for hq, bs, ctx in SHAPES:
    pages = ctx // PAGE
    kc = torch.randn(bs * pages, PAGE, 1, D, device="cuda", dtype=torch.bfloat16)
    table = torch.randperm(bs * pages, device="cuda", dtype=torch.int64).to(torch.int32).view(bs, pages)
    lens = torch.full((bs,), ctx, dtype=torch.int32, device="cuda")
    q = torch.randn(bs, hq, D, device="cuda", dtype=torch.bfloat16)
    call = lambda dd: gpu.paged_attention(q, kc, kc[..., :DV], table, lens, scale=SCALE, bundles=dd)
    # Reference on the first two sequences (float32, the gathered cache).
    nb = min(bs, 2)
    k = kc[table[:nb].long()].reshape(nb, ctx, D).float()
    s = torch.einsum("bhd,bkd->bhk", q[:nb].float(), k) * SCALE
    ref = torch.einsum("bhk,bkd->bhd", s.softmax(-1), k[..., :DV])
    for dd in (a, b) if not os.environ.get("AB_NOCHECK") else ():
        err = (call(dd)[:nb].float() - ref).abs().max().item()
        assert err < 2e-2, (dd, hq, bs, ctx, err)
    del k, s, ref
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(median_ms(lambda: call(a), iters=20, graph=True))
        tb.append(median_ms(lambda: call(b), iters=20, graph=True))
    flops = 2 * bs * hq * ctx * (D + DV)
    fa, fb = flops / statistics.median(ta) / 1e9, flops / statistics.median(tb) / 1e9
    r = [ta[i] / tb[i] for i in range(rounds)]
    tbs = bs * ctx * D * 2 / statistics.median(tb) / 1e9
    print(f"{hq:>4} {bs:>4} {ctx:>6}   {fa:>8.1f}{fb:>8.1f}{fb / fa:>7.3f}{min(r):>7.3f}..{max(r):.3f}"
          f"{tbs:>8.2f}{statistics.median(tb) * 1e3:>8.1f}")
    del kc, q
    torch.cuda.empty_cache()

HQ, HKV, DG, PG = 32, 8, 128, 16
for bs, ctx in ((32, 8192), (8, 16384), (64, 2048)):
    pages = ctx // PG
    kc = torch.randn(bs * pages, PG, HKV, DG, device="cuda", dtype=torch.bfloat16)
    vc = torch.randn_like(kc)
    table = torch.randperm(bs * pages, device="cuda", dtype=torch.int64).to(torch.int32).view(bs, pages)
    lens = torch.full((bs,), ctx, dtype=torch.int32, device="cuda")
    q = torch.randn(bs, HQ, DG, device="cuda", dtype=torch.bfloat16)
    call = lambda dd: gpu.paged_attention(q, kc, vc, table, lens, causal=True, bundles=dd)
    nb = min(bs, 2)
    k = kc[table[:nb].long()].reshape(nb, ctx, HKV, DG).float().repeat_interleave(HQ // HKV, 2)
    v = vc[table[:nb].long()].reshape(nb, ctx, HKV, DG).float().repeat_interleave(HQ // HKV, 2)
    s = torch.einsum("bhd,bkhd->bhk", q[:nb].float(), k) / DG ** 0.5
    ref = torch.einsum("bhk,bkhd->bhd", s.softmax(-1), v)
    for dd in (a, b) if not os.environ.get("AB_NOCHECK") else ():
        err = (call(dd)[:nb].float() - ref).abs().max().item()
        assert err < 2e-2, (dd, bs, ctx, err)
    del k, v, s, ref
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(median_ms(lambda: call(a), iters=20, graph=True))
        tb.append(median_ms(lambda: call(b), iters=20, graph=True))
    nbytes = bs * ctx * HKV * 2 * DG * 2
    r = [ta[i] / tb[i] for i in range(rounds)]
    print(f"GQA b={bs:<3} ctx={ctx:<6} A {nbytes / statistics.median(ta) / 1e9:6.2f} TB/s "
          f"B {nbytes / statistics.median(tb) / 1e9:6.2f} TB/s  B/A {statistics.median(ta) / statistics.median(tb):.3f} "
          f"({min(r):.3f}..{max(r):.3f}), B {statistics.median(tb) * 1e3:.1f} us")
    del kc, vc, q
    torch.cuda.empty_cache()
