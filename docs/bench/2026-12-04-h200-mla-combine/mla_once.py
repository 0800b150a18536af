"""One MLA absorbed decode shape, a few calls (for ncu): HEADS BATCH CTX DIR."""
import sys, torch
from attn import gpu

hq, bs, ctx, dd = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
D, DV, PAGE = 576, 512, 64
pages = ctx // PAGE
kc = torch.randn(bs * pages, PAGE, 1, D, device="cuda", dtype=torch.bfloat16)
table = torch.randperm(bs * pages, device="cuda", dtype=torch.int64).to(torch.int32).view(bs, pages)
lens = torch.full((bs,), ctx, dtype=torch.int32, device="cuda")
q = torch.randn(bs, hq, D, device="cuda", dtype=torch.bfloat16)
for _ in range(4):
    gpu.paged_attention(q, kc, kc[..., :DV], table, lens, scale=0.1352, bundles=dd)
torch.cuda.synchronize()
