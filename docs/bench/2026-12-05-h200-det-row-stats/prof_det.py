# Kernel times (torch.profiler) of attn's deterministic and fused backward
# sets and cuDNN's, bf16, causal 8k x 2 x 16 heads (d128) and MLA 192/128
# causal 8k x 2 x 16 heads. Run from the repository root, bundles in .dev/bwd.
import sys, torch
sys.path.insert(0, "python")
from attn import bench_backward as bb
from torch.nn.attention import sdpa_kernel, SDPBackend
import torch.nn.functional as F
for b, h, s, d, dv, causal in [(2, 16, 8192, 128, 128, True), (1, 16, 16384, 128, 128, False),
                               (2, 16, 8192, 192, 128, True)]:
    q, k = [torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(2)]
    v = torch.randn(b, h, s, dv, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    do = torch.randn(b, h, s, dv, device="cuda", dtype=torch.bfloat16)
    det = bb.pinned_runner(".dev/bwd", causal, None, deterministic=True)
    fused = bb.pinned_runner(".dev/bwd", causal, None, deterministic=False)
    fused_main = bb.pinned_runner(".dev/bwd-main", causal, None, deterministic=False)
    def cudnn(q, k, v):
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    for name, fn in [("det", det), ("fused", fused), ("fused-main", fused_main), ("cudnn", cudnn)]:
        if name.startswith("fused") and d != 128:
            continue
        out = fn(q, k, v)
        for _ in range(3):
            torch.autograd.grad(out, (q, k, v), do, retain_graph=True)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
            for _ in range(5):
                torch.autograd.grad(out, (q, k, v), do, retain_graph=True)
            torch.cuda.synchronize()
        print(f"== b{b} h{h} s{s} d{d}/{dv} causal={causal} {name}")
        for e in p.key_averages():
            if e.device_time_total > 0 and e.device_time_total / 5 > 20:
                print(f"   {e.device_time_total/5/1000:8.3f} ms  x{e.count//5}  {e.key[:80]}")
