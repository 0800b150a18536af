# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Gated DeltaNet prefill and decode: attn's chunked kernels against a
torch.compile'd implementation of the same chunked algorithm and against
attn's softmax attention at the same sequence length.

    # where the compiler is:
    python3 -m attn.bundles -o build/bundles/gated --gated-bench
    # on the GPU machine:
    ATTN_BUNDLES=build/bundles/gated python3 -m attn.bench_gated -o build/bench-gated

Shapes: a Qwen3-Next Gated DeltaNet layer (16 key heads, 32 value heads, head
dim 128, L2-normalized q and k, bf16, per-head gates in f32), batch 1,
T = 4k ... 32k; and the per-channel-gated form (KDA) at the same shapes.
Softmax attention: causal, 32 heads of 128 (the same heads as full
attention), attn's prefill kernel. Decode: one token per sequence with a
state, batch 1 and 32, timed over CUDA-graph replays.

FLOPs of the chunked algorithm per token and value head (C = 32, attn's
chunk; what the kernels compute): A and Aqk C·Dk each, T C²/3, W C·Dk, U and Aqk·V' C·Dv
each, and 2·Dk·Dv for each of W·S, Qg·S and the state update:
3·C·Dk + 2·C·Dv + C²/3 + 6·Dk·Dv. Softmax attention: 2·T²·D·H (causal).
Median of device-event timings after warm-up. Writes gated.csv and prints a
table.
"""

import argparse
import csv
import math
import os
import sys

B, HK, HV, D = 1, 16, 32, 128
SEQLENS = (4096, 8192, 16384, 32768)
DECODE_BATCHES = (1, 32)
# The torch baseline's chunk (flash-linear-attention's); attn's kernels take
# chunks of 32 (KERNEL_CHUNK, their FLOP count).
CHUNK, KERNEL_CHUNK = 64, 32


def variants():
    """The bundles the benchmark needs."""
    base = {"op": "gated_delta_rule", "dtype": "bf16", "key_head_dim": D, "value_head_dim": D,
            "chunk": CHUNK, "gate_dtype": "f32", "beta_dtype": "f32", "qk_l2norm": True,
            "scale": 1 / math.sqrt(D)}
    out = [dict(base, gate_kind=kind, initial_state=init)
           for kind in ("head", "channel") for init in (False, True)]
    out.append({"dtype": "bf16", "head_dim": D, "value_head_dim": D, "layout": "bhsd",
                "mask": "causal", "scale": 1 / math.sqrt(D), "softcap": None, "bias": False,
                "sinks": False, "lse": False})
    return out


def chunked_flops(t, dk=D, dv=D, c=KERNEL_CHUNK, heads=HV, b=B):
    return b * heads * t * (3 * c * dk + 2 * c * dv + c * c / 3 + 6 * dk * dv)


def torch_chunked():
    """The chunked algorithm in torch (f32 math), as flash-linear-attention's
    reference writes it: the intra-chunk products batched over all chunks,
    then a loop over chunks that carries the state. Both parts compiled."""
    import torch
    import torch.nn.functional as F

    def prep(q, k, v, g, beta, scale):
        b, t, hk, dk = q.shape
        hv = v.shape[2]
        n = t // CHUNK
        rep = hv // hk
        q = F.normalize(q.float(), dim=-1).repeat_interleave(rep, 2) * scale
        k = F.normalize(k.float(), dim=-1).repeat_interleave(rep, 2)
        # [B, H, N, C, D]
        q, k = (x.transpose(1, 2).reshape(b, hv, n, CHUNK, dk) for x in (q, k))
        v = v.float().transpose(1, 2).reshape(b, hv, n, CHUNK, -1)
        g = g.float().transpose(1, 2).reshape(b, hv, n, CHUNK).cumsum(-1)
        beta = beta.float().transpose(1, 2).reshape(b, hv, n, CHUNK)
        decay = (g[..., :, None] - g[..., None, :]).tril().exp().tril()
        a = (beta[..., :, None] * (k @ k.transpose(-1, -2)) * decay).tril(-1)
        eye = torch.eye(CHUNK, device=q.device)
        tmat = torch.linalg.solve_triangular(eye + a, torch.diag_embed(beta), upper=False)
        w = tmat @ (k * g.exp()[..., None])
        u = tmat @ v
        aqk = (q @ k.transpose(-1, -2)) * decay
        qg = q * g.exp()[..., None]
        kg = k * (g[..., -1:] - g).exp()[..., None]
        return w, u, aqk, qg, kg, g[..., -1].exp()

    def step(s, w, u, aqk, qg, kg, gl):
        vn = u - w @ s
        o = qg @ s + aqk @ vn
        s = gl[..., None, None] * s + kg.transpose(-1, -2) @ vn
        return o, s

    prep_c, step_c = torch.compile(prep), torch.compile(step)

    def run(q, k, v, g, beta, scale):
        w, u, aqk, qg, kg, gl = prep_c(q, k, v, g, beta, scale)
        b, h, n = w.shape[:3]
        s = torch.zeros(b, h, q.shape[-1], v.shape[-1], device=q.device)
        outs = []
        for i in range(n):
            o, s = step_c(s, w[:, :, i], u[:, :, i], aqk[:, :, i], qg[:, :, i], kg[:, :, i],
                          gl[:, :, i])
            outs.append(o)
        return torch.stack(outs, 2).reshape(b, h, -1, v.shape[-1]).transpose(1, 2), s

    return run


def main():
    import torch

    from . import gpu
    from .cudatime import median_ms

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="build/bench-gated")
    ap.add_argument("--bundles", default=os.environ.get("ATTN_BUNDLES", "build/bundles/gated"))
    ap.add_argument("--seqlens", type=int, nargs="*", default=list(SEQLENS))
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--no-torch", action="store_true", help="skip the torch.compile baseline")
    args = ap.parse_args()
    os.makedirs(args.output, exist_ok=True)
    name = torch.cuda.get_device_name()

    def time_ms(fn, iters=args.iters, warmup=2):
        return median_ms(fn, iters=iters, warmup=warmup)

    def graph_ms(fn, reps=10, iters=20):
        return median_ms(fn, iters=iters, graph=True, reps=reps)

    torch.manual_seed(0)
    scale = 1 / math.sqrt(D)
    ref = None if args.no_torch else torch_chunked()
    rows = []
    print(f"{name}: Gated DeltaNet prefill, B={B} Hk={HK} Hv={HV} D={D} bf16")
    for t in args.seqlens:
        dev = dict(device="cuda")
        q = torch.randn(B, t, HK, D, dtype=torch.bfloat16, **dev)
        k = torch.randn(B, t, HK, D, dtype=torch.bfloat16, **dev)
        v = torch.randn(B, t, HV, D, dtype=torch.bfloat16, **dev)
        beta = torch.sigmoid(torch.randn(B, t, HV, **dev))
        for kind in ("head", "channel"):
            gshape = (B, t, HV, D) if kind == "channel" else (B, t, HV)
            g = -2 * torch.sigmoid(torch.randn(gshape, **dev) - 2)
            ms = time_ms(lambda: gpu.gated_delta_rule(q, k, v, g, beta, qk_l2norm=True,
                                                      bundles=args.bundles))
            row = {"gpu": name, "gate": kind, "T": t, "attn_ms": ms,
                   "attn_tokens_per_s": B * t / ms * 1e3,
                   "attn_tflops": chunked_flops(t) / ms / 1e9}
            if ref is not None and kind == "head":
                try:
                    tms = time_ms(lambda: ref(q, k, v, g, beta, scale), iters=3, warmup=1)
                    o_ref, _ = ref(q, k, v, g, beta, scale)
                    o, _ = gpu.gated_delta_rule(q, k, v, g, beta, qk_l2norm=True,
                                                bundles=args.bundles)
                    err = ((o.float() - o_ref).norm() / o_ref.norm()).item()
                    row.update(torch_ms=tms, torch_rel_diff=err)
                except Exception as e:  # report, keep measuring
                    print(f"  torch.compile baseline failed at T={t}: {str(e).splitlines()[0][:100]}")
            if kind == "head":
                qa = torch.randn(B, HV, t, D, dtype=torch.bfloat16, **dev)
                ka, va = torch.randn_like(qa), torch.randn_like(qa)
                ams = time_ms(lambda: gpu.attention(qa, ka, va, causal=True, bundles=args.bundles))
                row.update(softmax_ms=ams,
                           softmax_tflops=2 * B * HV * t * t * D / ams / 1e9)
                del qa, ka, va
            rows.append(row)
            extra = ""
            if "torch_ms" in row:
                extra += (f"  torch.compile {row['torch_ms']:8.2f} ms "
                          f"({row['torch_ms'] / ms:5.1f}x slower, rel diff {row['torch_rel_diff']:.1e})")
            if "softmax_ms" in row:
                extra += f"  softmax attn {row['softmax_ms']:7.2f} ms ({row['softmax_tflops']:5.0f} TFLOP/s)"
            print(f"{kind:7} T={t:<6} attn {ms:7.2f} ms {row['attn_tokens_per_s'] / 1e6:6.2f} M tok/s "
                  f"{row['attn_tflops']:5.1f} TFLOP/s{extra}", flush=True)
        del q, k, v
        torch.cuda.empty_cache()
    # Decode: one token, state in and out (read and written once:
    # 2 * B * Hv * Dk * Dv * 4 bytes).
    for bsz in DECODE_BATCHES:
        for kind in ("head", "channel"):
            dev = dict(device="cuda")
            q = torch.randn(bsz, 1, HK, D, dtype=torch.bfloat16, **dev)
            k, v = torch.randn_like(q), torch.randn(bsz, 1, HV, D, dtype=torch.bfloat16, **dev)
            gshape = (bsz, 1, HV, D) if kind == "channel" else (bsz, 1, HV)
            g = -torch.rand(gshape, **dev)
            beta = torch.rand(bsz, 1, HV, **dev)
            s0 = torch.randn(bsz, HV, D, D, **dev)
            us = graph_ms(lambda: gpu.gated_delta_rule(q, k, v, g, beta, initial_state=s0,
                                                       qk_l2norm=True, bundles=args.bundles)) * 1e3
            state_bytes = 2 * bsz * HV * D * D * 4
            rows.append({"gpu": name, "gate": kind, "decode_batch": bsz, "decode_us": us,
                         "decode_state_tbs": state_bytes / us / 1e6})
            print(f"decode {kind:7} B={bsz:<3} {us:7.1f} us per step "
                  f"(state read + written: {state_bytes / us / 1e6:5.2f} TB/s)", flush=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(os.path.join(args.output, "gated.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
