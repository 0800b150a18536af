# Host time of attn's backward with the native launches on and off, and of
# SDPA cuDNN's (d128 causal 8k x 2 x 16 heads, bf16). Repository root, .dev/bwd.
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
ours = lambda q, k, v: gpu.attention(q, k, v, causal=True, bundles=".dev/bwd")
out_f, lse = gpu.attention(q.detach(), k.detach(), v.detach(), causal=True, return_lse=True, bundles=".dev/bwd")
def report(name, g):
    print(f"{name:34s} host {host_us(g, iters=50):8.1f} us  one call {median_ms(g):.3f} ms  20 back-to-back {median_ms(g, reps=20):.3f} ms")
for det in (False, True):
    raw = lambda: gpu.attention_backward(do, q.detach(), k.detach(), v.detach(), out_f, lse, causal=True,
                                         bundles=".dev/bwd", deterministic=det)
    for on in (True, False):
        gpu.set_fastpath(on)
        report(f"attention_backward det={det} fast={on}", raw)
gpu.set_fastpath(True)
print(gpu.fastpath_status())
for name, fn in [("attn autograd", ours), ("cudnn autograd", cudnn)]:
    out = fn(q, k, v)
    report(name, lambda: torch.autograd.grad(out, (q, k, v), do, retain_graph=True))
