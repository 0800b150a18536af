import sys, torch
sys.path.insert(0, "python")
from attn import gpu
from attn.cudatime import host_us, median_ms
from torch.nn.attention import sdpa_kernel, SDPBackend
import torch.nn.functional as F
b, h, s, causal = 2, 16, 8192, True
q, k, v = [torch.randn(b, h, s, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3)]
do = torch.randn(b, h, s, 128, device="cuda", dtype=torch.bfloat16)
def cudnn(q, k, v):
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
class Nop(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        ctx.save_for_backward(q, k, v)
        return q.clone()
    @staticmethod
    def backward(ctx, do):
        q, k, v = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
ours = lambda q, k, v: gpu.attention(q, k, v, causal=True, bundles=".dev/bwd")
out_f, lse = gpu.attention(q.detach(), k.detach(), v.detach(), causal=True, return_lse=True, bundles=".dev/bwd")
raw = lambda: gpu.attention_backward(do, q.detach(), k.detach(), v.detach(), out_f, lse, causal=True, bundles=".dev/bwd")
def report(name, g):
    print(f"{name:24s} host {host_us(g, iters=50):8.1f} us  one call {median_ms(g):.3f} ms  20 back-to-back {median_ms(g, reps=20):.3f} ms")
for mt in (True, False):
    torch.autograd.set_multithreading_enabled(mt)
    for name, fn in [("attn autograd", ours), ("cudnn autograd", cudnn), ("nop Function", Nop.apply)]:
        out = fn(q, k, v)
        report(f"{name} mt={mt}", lambda: torch.autograd.grad(out, (q, k, v), do, retain_graph=True))
report("attention_backward", raw)
import cProfile, pstats, io
torch.autograd.set_multithreading_enabled(False)
out = ours(q, k, v)
pr = cProfile.Profile(); pr.enable()
for _ in range(50):
    torch.autograd.grad(out, (q, k, v), do, retain_graph=True)
pr.disable(); torch.cuda.synchronize()
st = io.StringIO(); pstats.Stats(pr, stream=st).sort_stats("tottime").print_stats(18); print(st.getvalue()[-3500:])
