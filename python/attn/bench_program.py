"""Whole-layer time of attn's compiled programs against torch, and the host
time per call of the program path, on a GPU machine:

    python3 -m attn.bench_program [build/programs]

For each example program: the GPU time per call (CUDA events over
back-to-back calls), the same layer in torch (SDPA, whose backend torch
picks, and the transpose + reshape), and the host time per call from Python
(time a thread spends in the call, with the GPU kept busy so that no call
waits: attn.cudatime.host_us). The C caller (examples/program/main.c)
reports the host time per call without Python.
"""

import sys

import torch

from attn import program
from attn.cudatime import host_us, median_ms


def gpu_ms(fn):
    """GPU milliseconds per call: the median of 5 windows of 20
    back-to-back calls, which hide the host's time behind queued work."""
    return median_ms(fn, iters=5, reps=20, warmup=1)


def torch_layer(q, k, v, scale, causal=False, window=None, bias=None):
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, 1)
    v = v.repeat_interleave(group, 1)
    mask = bias
    if window is not None:
        i = torch.arange(q.shape[2], device=q.device)[:, None]
        j = torch.arange(k.shape[2], device=q.device)[None, :]
        mask = (j <= i) & (i - j < window)
    o = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=causal and mask is None, scale=scale,
        enable_gqa=False)
    b, h, s, d = o.shape
    return o.transpose(1, 2).reshape(b, s, h * d)


def main(directory="build/programs"):
    rows = []
    dev = "cuda"
    bf, hf = torch.bfloat16, torch.float16

    def case(name, prog_name, args, ref):
        prog = program.load(f"{directory}/{prog_name}.so")
        call = lambda: prog.attention(*args)  # noqa: E731
        rows.append((name, gpu_ms(call), gpu_ms(ref), host_us(call)))

    q = torch.randn(1, 32, 2048, 128, device=dev, dtype=bf)
    k = torch.randn(1, 8, 2048, 128, device=dev, dtype=bf)
    v = torch.randn(1, 8, 2048, 128, device=dev, dtype=bf)
    case("llama3-8b 2048 causal bf16", "llama3_8b_attention", (q, k, v),
         lambda: torch_layer(q, k, v, 0.08837890625, causal=True))
    q = torch.randn(1, 32, 8192, 128, device=dev, dtype=hf)
    k = torch.randn(1, 8, 8192, 128, device=dev, dtype=hf)
    v = torch.randn(1, 8, 8192, 128, device=dev, dtype=hf)
    case("mistral-7b 8192 swa4096 f16", "mistral_7b_attention", (q, k, v),
         lambda: torch_layer(q, k, v, 0.08837890625, window=4096))
    x = [torch.randn(1, 512, 768, device=dev) for _ in range(3)]
    pad = torch.zeros(1, 1, 512, device=dev)
    heads = lambda t: t.reshape(1, 512, 12, 64).transpose(1, 2)  # noqa: E731
    case("bert-base 512 tosa f32", "bert_base_attention_tosa", (*x, pad),
         lambda: torch_layer(heads(x[0]), heads(x[1]), heads(x[2]), 0.125,
                             bias=pad[:, None]))
    for tokens in (1, 1000, 4097):
        q = torch.randn(1, 32, tokens, 128, device=dev, dtype=bf)
        k = torch.randn(1, 8, tokens, 128, device=dev, dtype=bf)
        v = torch.randn(1, 8, tokens, 128, device=dev, dtype=bf)
        case(f"dynamic llama, {tokens} tokens", "attention_dynamic", (q, k, v),
             lambda q=q, k=k, v=v: torch_layer(q, k, v, 0.0883883461, causal=True))
    # Decode: paged attention over a scattered cache (Llama-3.1-8B GQA, batch
    # 8, 8k context) against SDPA over the same keys laid out contiguously;
    # a Gated DeltaNet layer of 1000 tokens (no torch counterpart).
    prog = program.load(f"{directory}/decode_step.so")
    b, ctx, page = 8, 8192, 16
    pages = b * ctx // page
    table = torch.randperm(pages, device=dev).view(b, ctx // page).to(torch.int32)
    lens = torch.full((b,), ctx, device=dev, dtype=torch.int32)
    q = torch.randn(b, 1, 32, 128, device=dev, dtype=bf)
    kc = torch.randn(pages, page, 8, 128, device=dev, dtype=bf)
    vc = torch.randn(pages, page, 8, 128, device=dev, dtype=bf)
    kd = torch.randn(b, 8, ctx, 128, device=dev, dtype=bf)
    vd = torch.randn(b, 8, ctx, 128, device=dev, dtype=bf)
    call = lambda: prog.paged_decode(q, kc, vc, table, lens)  # noqa: E731
    ref = lambda: torch.nn.functional.scaled_dot_product_attention(  # noqa: E731
        q.transpose(1, 2), kd, vd, enable_gqa=True)
    rows.append(("paged decode b8 8k (vs contiguous)", gpu_ms(call), gpu_ms(ref), host_us(call)))
    t = 1000
    qg = torch.randn(1, t, 16, 128, device=dev, dtype=bf)
    vg = torch.randn(1, t, 32, 128, device=dev, dtype=bf)
    gate = -torch.rand(1, t, 32, device=dev)
    beta = torch.rand(1, t, 32, device=dev)
    call = lambda: prog.gated_delta(qg, qg, vg, gate, beta)  # noqa: E731
    rows.append(("gated deltanet 1000 tokens", gpu_ms(call), float("nan"), host_us(call)))
    print(f"{'layer':36} {'attn ms':>9} {'torch ms':>9} {'speedup':>8} {'host us/call (Python)':>22}")
    for name, a, t, h in rows:
        print(f"{name:36} {a:9.3f} {t:9.3f} {t / a:8.2f} {h:22.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
