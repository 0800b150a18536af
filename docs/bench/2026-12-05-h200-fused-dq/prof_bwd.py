import sys, torch
sys.path.insert(0, "python")
from attn import bench_backward as bb
from torch.nn.attention import sdpa_kernel, SDPBackend
import torch.nn.functional as F
mode = sys.argv[1]  # prof | once
shapes = [(2, 16, 8192, True), (1, 16, 16384, False)]
if mode == "once":
    shapes = [shapes[int(sys.argv[2])]]
for b, h, s, causal in shapes:
    q, k, v, do = [torch.randn(b, h, s, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(4)]
    do = do.detach()
    fused = bb.pinned_runner(".dev/bwd", causal, None, deterministic=False)
    det = bb.pinned_runner(".dev/bwd", causal, None, deterministic=True)
    def cudnn(q, k, v):
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    for name, fn in [("fused", fused), ("det", det), ("cudnn", cudnn)]:
        if mode == "once" and name != "fused":
            continue
        out = fn(q, k, v)
        for _ in range(3):
            torch.autograd.grad(out, (q, k, v), do, retain_graph=True)
        torch.cuda.synchronize()
        if mode == "once":
            break
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
            for _ in range(5):
                torch.autograd.grad(out, (q, k, v), do, retain_graph=True)
            torch.cuda.synchronize()
        print(f"== b{b} h{h} s{s} causal={causal} {name}")
        for e in p.key_averages():
            if e.device_time_total > 0:
                print(f"   {e.device_time_total/5/1000:8.3f} ms  x{e.count//5}  {e.key[:90]}")
