# Short sequences: attn against cuDNN per shape (hidden 2048, 16k tokens a batch),
# and the per-block cost fit t_block = a + c * key_steps from non-causal runs.
import sys, math
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
sys.path.insert(0, "python")
from attn import gpu
from attn.cudatime import median_ms
bundles = sys.argv[1]
rows = []
for d in (64, 128):
    for causal, seqs in ((False, (128, 256, 512, 1024, 2048, 16384)), (True, (1024, 2048, 4096, 16384))):
        for s in seqs:
            b, h = 16384 // s, 2048 // d
            q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            out = torch.empty_like(q)
            fa = lambda: gpu.attention(q, k, v, causal=causal, bundles=bundles, out=out)
            def cd():
                with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            t_a, t_c = median_ms(fa, iters=30), median_ms(cd, iters=30)
            fl = 4 * b * h * s * s * d * (0.5 if causal else 1)
            blocks = b * h * math.ceil(s / 128)
            rows.append((d, causal, s, b, t_a, t_c, blocks))
            print(f"d{d} {'causal' if causal else 'full  '} s={s:6d} b={b:4d}: attn {t_a:.4f} ms "
                  f"{fl / t_a / 1e9:6.1f} TF/s  cuDNN {t_c:.4f} ms {fl / t_c / 1e9:6.1f} TF/s  "
                  f"attn/cuDNN {t_c / t_a:.2f}  blocks {blocks}", flush=True)
# Fit on non-causal: time per wave of 132 blocks (one per SM) = a + c * steps.
for d in (64, 128):
    pts = [(s // 128, t_a / (blk / 132)) for dd, c, s, b, t_a, t_c, blk in rows
           if dd == d and not c and s <= 2048]
    n = len(pts); sx = sum(p[0] for p in pts); sy = sum(p[1] for p in pts)
    sxx = sum(p[0] ** 2 for p in pts); sxy = sum(p[0] * p[1] for p in pts)
    c = (n * sxy - sx * sy) / (n * sxx - sx * sx); a = (sy - c * sx) / n
    print(f"d{d}: a block of k 128-key steps takes {a * 1000:.2f} + {c * 1000:.2f} k us "
          f"(points {[(k, round(t * 1000, 2)) for k, t in pts]})")
