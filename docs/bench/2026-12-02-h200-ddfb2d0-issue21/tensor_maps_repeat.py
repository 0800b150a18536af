# The TMA-descriptor comparison repeated, alternating the two bundle directories
# (build/bundles: by value; build/bundles-global: --tensor-maps=global).
import sys, torch
sys.path.insert(0, "python")  # run from the repository root
from attn import cudatime, gpu
param, glob = "build/bundles", "build/bundles-global"
for name, (b, h, s, d, causal, lse) in {
        "d64 causal lse 8k x2": (2, 16, 8192, 64, True, True),
        "d128 causal 4k x2": (2, 16, 4096, 128, True, False)}.items():
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    run = lambda dirs: cudatime.median_ms(lambda: gpu.attention(
        q, k, v, causal=causal, return_lse=lse, bundles=dirs), reps=10, iters=30)
    rs = []
    for _ in range(4):
        a, g = run(param), run(glob)
        rs.append(a / g)
    print(name, " ".join(f"{r:.3f}" for r in rs))
