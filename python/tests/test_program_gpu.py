"""GPU programs (attn-compile --shared) called from PyTorch, on a GPU machine.

The programs are compiled where the compiler is (tools: no LLVM on the GPU
machine), into $ATTN_PROGRAMS (default build/programs), by
`.ci/gpu-programs build` or by hand:

    build/bin/attn-compile --shared examples/frontend/llama3_8b_attention.mlir \
        -o build/programs/llama3_8b_attention.so

Each test runs a whole module -- the frontend examples (torch-mlir linalg and
TOSA, fused by attn-fuse, with the transposes and reshapes around attention
on the GPU) and the dynamic-length module at several lengths -- and checks
it against the same computation in float64, with FlashAttention's rule:
max|out - ref64| <= 2 * max|sdpa - ref64| + atol, where sdpa is torch's
attention in the inputs' dtype.
"""

import math
import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU on this machine: program tests run on the device machine",
                allow_module_level=True)

from attn import program  # noqa: E402

PROGRAMS = os.environ.get("ATTN_PROGRAMS", "build/programs")


def load(name):
    path = os.path.join(PROGRAMS, name + ".so")
    if not os.path.exists(path):
        pytest.fail(f"{path} missing: compile it with attn-compile --shared "
                    f"(.ci/gpu-programs build)")
    return program.load(path)


def attention64(q, k, v, *, scale, mask=None, bias=None):
    """[B, H, S, D] attention in float64 (GQA by head repetition); `mask`
    is a function (i, j) -> bool of the admitted keys."""
    q, k, v = (x.double() for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, 1)
    v = v.repeat_interleave(group, 1)
    s = scale * q @ k.transpose(-1, -2)
    if bias is not None:
        s = s + bias.double()
    if mask is not None:
        i = torch.arange(q.shape[2], device=q.device)[:, None]
        j = torch.arange(k.shape[2], device=q.device)[None, :]
        s = s.masked_fill(~mask(i, j), float("-inf"))
    return torch.softmax(s, -1) @ v


def sdpa(q, k, v, *, scale, mask=None, bias=None):
    """The same in the inputs' dtype (torch's own kernels), for the rule."""
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, 1)
    v = v.repeat_interleave(group, 1)
    attn_mask = bias
    if mask is not None:
        i = torch.arange(q.shape[2], device=q.device)[:, None]
        j = torch.arange(k.shape[2], device=q.device)[None, :]
        attn_mask = mask(i, j)
    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, scale=scale)


def check(out, ref64, base, atol):
    err = (out.double() - ref64).abs().max().item()
    base = (base.double() - ref64).abs().max().item()
    print(f"  max error {err:.3e} (torch in the same dtype: {base:.3e})")
    assert not torch.isnan(out).any()
    assert err <= 2 * base + atol, f"max error {err:.3e} > 2 x {base:.3e} + {atol}"


def to_bsd(o):
    """[B, H, S, D] -> [B, S, H * D], as the examples end."""
    b, h, s, d = o.shape
    return o.transpose(1, 2).reshape(b, s, h * d)


def causal(i, j):
    return j <= i


def test_llama3_8b():
    prog = load("llama3_8b_attention")
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(1, 32, 2048, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, 8, 2048, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(1, 8, 2048, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    out = prog.attention(q, k, v)
    torch.cuda.synchronize()
    assert out.shape == (1, 2048, 4096) and out.dtype == torch.bfloat16
    # The graph multiplies by the bf16 constant 0.08838834765, i.e. 0.08837890625.
    scale = 0.08837890625
    check(out, to_bsd(attention64(q, k, v, scale=scale, mask=causal)),
          to_bsd(sdpa(q, k, v, scale=scale, mask=causal)), 1e-3)


def test_mistral_7b():
    prog = load("mistral_7b_attention")
    g = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(1, 32, 8192, 128, device="cuda", dtype=torch.float16, generator=g)
    k = torch.randn(1, 8, 8192, 128, device="cuda", dtype=torch.float16, generator=g)
    v = torch.randn(1, 8, 8192, 128, device="cuda", dtype=torch.float16, generator=g)
    out = prog.attention(q, k, v)
    torch.cuda.synchronize()
    assert out.shape == (1, 8192, 4096)
    window = lambda i, j: (j <= i) & (i - j < 4096)  # noqa: E731
    scale = float(torch.tensor(1 / math.sqrt(128), dtype=torch.float16))
    check(out, to_bsd(attention64(q, k, v, scale=scale, mask=window)),
          to_bsd(sdpa(q, k, v, scale=scale, mask=window)), 1e-3)


def test_bert_tosa():
    prog = load("bert_base_attention_tosa")
    g = torch.Generator(device="cuda").manual_seed(2)
    q, k, v = (torch.randn(1, 512, 768, device="cuda", generator=g) for _ in range(3))
    padding = torch.zeros(1, 1, 512, device="cuda")
    padding[..., 400:] = -10000.0  # the last 112 tokens are padding
    out = prog.attention(q, k, v, padding)
    torch.cuda.synchronize()
    assert out.shape == (1, 512, 768) and out.dtype == torch.float32
    heads = lambda x: x.reshape(1, 512, 12, 64).transpose(1, 2)  # noqa: E731
    bias = padding[:, None]  # [1, 1, 1, 512]
    ref = to_bsd(attention64(heads(q), heads(k), heads(v), scale=0.125, bias=bias))
    base = to_bsd(sdpa(heads(q), heads(k), heads(v), scale=0.125, bias=bias))
    check(out, ref, base, 1e-5)


@pytest.mark.parametrize("batch,tokens", [(1, 1), (1, 1000), (1, 4097), (3, 1000)])
@pytest.mark.parametrize("module,scale", [("attention_dynamic", 0.0883883461),
                                          ("llama_unfused_dynamic", 0.08837890625)])
def test_dynamic_lengths(module, scale, batch, tokens):
    """The dynamic-length programs at several batch sizes and lengths: the
    fused module and the unfused torch-mlir graph (fused by attn-fuse; its
    scale is the bf16 constant 0.08838834765, i.e. 0.08837890625)."""
    prog = load(module)
    g = torch.Generator(device="cuda").manual_seed(tokens)
    q = torch.randn(batch, 32, tokens, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(batch, 8, tokens, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(batch, 8, tokens, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    out = prog.attention(q, k, v)
    torch.cuda.synchronize()
    assert out.shape == (batch, tokens, 4096)
    check(out, to_bsd(attention64(q, k, v, scale=scale, mask=causal)),
          to_bsd(sdpa(q, k, v, scale=scale, mask=causal)), 1e-3)


def test_dynamic_mismatch_is_reported_not_run():
    """K and V of different lengths: the program's run-time check stops it
    before any launch (cf.assert prints its message and aborts the process),
    so it runs in a child process."""
    import subprocess
    import sys

    code = (
        "import torch; from attn import program\n"
        f"p = program.load({os.path.join(PROGRAMS, 'attention_dynamic.so')!r})\n"
        "q = torch.zeros(1, 32, 8, 128, device='cuda', dtype=torch.bfloat16)\n"
        "k = torch.zeros(1, 8, 8, 128, device='cuda', dtype=torch.bfloat16)\n"
        "v = torch.zeros(1, 8, 9, 128, device='cuda', dtype=torch.bfloat16)\n"
        "p.attention(q, k, v); torch.cuda.synchronize()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode != 0
    assert "dim 2 of 'v' differs from Sk" in r.stdout + r.stderr


def test_results_are_owned_and_freed():
    """Results are torch tensors over the program's buffers; dropping them
    frees the memory (no growth over many calls)."""
    prog = load("attention_dynamic")
    q = torch.randn(1, 32, 256, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 8, 256, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, 8, 256, 128, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        prog.attention(q, k, v)
    torch.cuda.synchronize()
    free0 = torch.cuda.mem_get_info()[0]
    for _ in range(200):
        prog.attention(q, k, v)
    torch.cuda.synchronize()
    free1 = torch.cuda.mem_get_info()[0]
    # 200 results of 2 MiB would be 400 MiB; the pool may keep a few.
    assert free0 - free1 < 64 << 20, f"{(free0 - free1) >> 20} MiB not freed"


@pytest.mark.parametrize("side_stream", [False, True])
def test_calls_are_asynchronous_and_stream_ordered(side_stream):
    """A call enqueues its work on torch's current stream and returns without
    waiting for the GPU: behind a long-running kernel on that stream, the call
    returns while the stream is still busy, and its result (read after the
    stream drains) is right. On torch's default stream (handle 0) as well as
    on a side stream."""
    prog = load("attention_dynamic")
    g = torch.Generator(device="cuda").manual_seed(7)
    q = torch.randn(1, 32, 300, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, 8, 300, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(1, 8, 300, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    prog.attention(q, k, v)  # load the kernels first
    torch.cuda.synchronize()
    stream = torch.cuda.Stream() if side_stream else torch.cuda.default_stream()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(int(5e8))  # about a quarter of a second
        out = prog.attention(q, k, v)
        still_busy = not stream.query()
    stream.synchronize()
    assert still_busy, "the call waited for the GPU"
    check(out, to_bsd(attention64(q, k, v, scale=0.0883883461, mask=causal)),
          to_bsd(sdpa(q, k, v, scale=0.0883883461, mask=causal)), 1e-3)


def test_argument_checks():
    prog = load("attention_dynamic")
    q = torch.randn(1, 32, 16, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 8, 16, 128, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="float16"):
        prog.attention(q.half(), k, k)
    with pytest.raises(ValueError, match="dim 1 is 16"):
        prog.attention(torch.randn(1, 16, 16, 128, device="cuda", dtype=torch.bfloat16), k, k)
    with pytest.raises(ValueError, match="not contiguous"):
        prog.attention(q.transpose(2, 3).contiguous().transpose(2, 3), k, k)
    with pytest.raises(TypeError, match="CUDA tensor"):
        prog.attention(q.cpu(), k, k)


@pytest.mark.parametrize("batch,max_len", [(1, 1), (4, 1000), (8, 4097)])
def test_paged_decode(batch, max_len):
    """attn.paged_attention in a program: the split count chosen at run time
    from the SM count, the splits merged, pages scattered over the cache."""
    from attn.reference import paged_attention_reference

    prog = load("decode_step")
    g = torch.Generator(device="cuda").manual_seed(batch)
    page = 16
    lens = torch.randint(1, max_len + 1, (batch,), generator=g, device="cuda", dtype=torch.int32)
    lens[0] = max_len
    max_pages = -(-max_len // page)
    pages = batch * max_pages + 3
    perm = torch.randperm(pages, generator=g, device="cuda")[:batch * max_pages]
    table = perm.view(batch, max_pages).to(torch.int32).contiguous()
    q = torch.randn(batch, 1, 32, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    kc = torch.randn(pages, page, 8, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    vc = torch.randn(pages, page, 8, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    out = prog.paged_decode(q, kc, vc, table, lens)
    torch.cuda.synchronize()
    assert out.shape == (batch, 1, 32, 128)
    np64 = lambda x: x.double().cpu().numpy()  # noqa: E731
    ref, _ = paged_attention_reference(np64(q), np64(kc), np64(vc), table.cpu().numpy(),
                                       lens.cpu().numpy(), mask="causal", scale=0.0883883461)
    ref = torch.from_numpy(ref).cuda()
    # The error floor: the same attention in bf16 (SDPA) on each sequence's
    # keys gathered contiguously.
    base = 0.0
    for i in range(batch):
        n = int(lens[i])
        j = torch.arange(n, device="cuda")
        k = kc[table[i, j // page].long(), j % page]  # [n, 8, 128]
        v = vc[table[i, j // page].long(), j % page]
        low = sdpa(q[i:i + 1].transpose(1, 2), k[None].transpose(1, 2),
                   v[None].transpose(1, 2), scale=0.0883883461).transpose(1, 2)
        base = max(base, (low.double() - ref[i:i + 1]).abs().max().item())
    err = (out.double() - ref).abs().max().item()
    print(f"  max error {err:.3e} (bf16 SDPA: {base:.3e})")
    assert not torch.isnan(out).any()
    assert err <= 2 * base + 1e-3, f"max error {err:.3e} > 2 x {base:.3e} + 1e-3"


@pytest.mark.parametrize("batch,tokens", [(1, 1), (2, 16), (2, 17), (1, 1000)])
def test_gated_delta(batch, tokens):
    """attn.gated_delta_rule in a program: the recurrent kernel up to 16
    tokens, the chunked kernels and workspaces sized from the runtime length
    beyond, output and final state against the token-by-token float64
    recurrence."""
    import numpy as np

    from attn.reference import gated_delta_reference

    prog = load("decode_step")
    g = torch.Generator(device="cuda").manual_seed(tokens)
    q = torch.randn(batch, tokens, 16, 128, device="cuda", generator=g).to(torch.bfloat16)
    k = torch.randn(batch, tokens, 16, 128, device="cuda", generator=g).to(torch.bfloat16)
    v = torch.randn(batch, tokens, 32, 128, device="cuda", generator=g).to(torch.bfloat16)
    gate = -2 * torch.sigmoid(torch.randn(batch, tokens, 32, device="cuda", generator=g) - 2)
    beta = torch.sigmoid(torch.randn(batch, tokens, 32, device="cuda", generator=g))
    out, state = prog.gated_delta(q, k, v, gate, beta)
    torch.cuda.synchronize()
    assert out.shape == (batch, tokens, 32, 128) and state.shape == (batch, 32, 128, 128)
    np64 = lambda x: x.double().cpu().numpy()  # noqa: E731
    ref_o, ref_s = gated_delta_reference(np64(q), np64(k), np64(v), np64(gate), np64(beta),
                                         qk_l2norm=True, scale=0.0883883461)
    rel = lambda x, r: np.sqrt(((x - r) ** 2).mean()) / np.sqrt((r ** 2).mean())  # noqa: E731
    eo, es = rel(np64(out), ref_o), rel(np64(state), ref_s)
    print(f"  rms rel error: out {eo:.2e}, state {es:.2e}")
    assert not torch.isnan(out).any() and not torch.isnan(state).any()
    # The bound of the GPU suite's gated delta tests (python/tests/test_gpu.py).
    assert eo < 5e-3 and es < 5e-3


@pytest.mark.parametrize("tokens", [1, 1000, 5000])
def test_bshd_sliding_window(tokens):
    """[B, S, H, D] tensors (TMA boxes along dim 1) with a 4096-key window,
    reshaped to [B, S, 4096] in place (no copy)."""
    prog = load("attention_dynamic")
    g = torch.Generator(device="cuda").manual_seed(tokens + 7)
    q = torch.randn(2, tokens, 32, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(2, tokens, 8, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(2, tokens, 8, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    out = prog.attention_bshd_window(q, k, v)
    torch.cuda.synchronize()
    assert out.shape == (2, tokens, 4096)
    window = lambda i, j: (j <= i) & (i - j < 4096)  # noqa: E731
    heads = lambda x: x.transpose(1, 2)  # noqa: E731
    check(out, to_bsd(attention64(heads(q), heads(k), heads(v), scale=0.0883883461, mask=window)),
          to_bsd(sdpa(heads(q), heads(k), heads(v), scale=0.0883883461, mask=window)), 1e-3)


@pytest.mark.parametrize("batch,tokens", [(1, 1), (2, 1000), (1, 4097)])
def test_fp8(batch, tokens):
    """attention_dynamic.attention_fp8: e4m3 bytes and per-(batch, KV head)
    descales in, bf16 out (sm_90a). FlashAttention-3's FP8 rule against the
    float64 attention of the dequantized inputs: at most twice the error of
    the same math in bf16 with the normalized P rounded to e4m3."""
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("FP8 attention runs on the sm_90a kernel (a Hopper GPU)")
    prog = load("attention_dynamic")
    g = torch.Generator(device="cuda").manual_seed(tokens + 11)

    def quantize(h, spread):
        x = spread * torch.randn(batch, h, tokens, 128, device="cuda", generator=g)
        grouped = x.reshape(batch, 8, -1)  # a KV head's query heads together
        descale = (grouped.abs().amax(-1) / 448.0).float().contiguous()  # [B, 8]
        per_head = descale.repeat_interleave(h // 8, 1)[:, :, None, None]
        x8 = (x / per_head).to(torch.float8_e4m3fn)
        return x8, descale, x8.double() * per_head.double()

    (q8, dq, q), (k8, dk, k), (v8, dv, v) = quantize(32, 1.0), quantize(8, 2.0), quantize(8, 0.5)
    out = prog.attention_fp8(q8.view(torch.int8), k8.view(torch.int8), v8.view(torch.int8),
                             dq, dk, dv)
    torch.cuda.synchronize()
    assert out.dtype == torch.bfloat16 and out.shape == (batch, 32, tokens, 128)
    scale = 0.0883883461
    ref = attention64(q, k, v, scale=scale, mask=causal)
    # The native math: bf16 scores, P normalized and rounded to e4m3, P.V in bf16.
    i = torch.arange(tokens, device="cuda")[:, None]
    j = torch.arange(tokens, device="cuda")[None, :]
    s = (scale * q.bfloat16() @ k.bfloat16().repeat_interleave(4, 1).transpose(-1, -2)).float()
    p = torch.softmax(s.masked_fill(~causal(i, j), float("-inf")), -1)
    p = p.to(torch.float8_e4m3fn).to(torch.bfloat16)
    native = p @ v.bfloat16().repeat_interleave(4, 1)
    check(out, ref, native, 0.0)


def _grads(q, k, v, do, dtype, *, scale, mask, sinks=None):
    """attn.attention's output and its gradients by torch autograd over the
    unfused math in `dtype` (float64: the reference; the inputs' dtype: the
    rule's baseline), GQA by head repetition, sinks as one more logit per
    row that takes no value."""
    leaves = [x.detach().to(dtype).requires_grad_() for x in (q, k, v)]
    s_leaf = sinks.detach().to(dtype).requires_grad_() if sinks is not None else None
    qd, kd, vd = leaves
    group = qd.shape[1] // kd.shape[1]
    kr, vr = kd.repeat_interleave(group, 1), vd.repeat_interleave(group, 1)
    s = scale * qd @ kr.transpose(-1, -2)
    i = torch.arange(q.shape[2], device=q.device)[:, None]
    j = torch.arange(k.shape[2], device=q.device)[None, :]
    s = s.masked_fill(~mask(i, j), float("-inf"))
    if s_leaf is not None:
        sink = s_leaf[None, :, None, None].expand(s.shape[0], -1, s.shape[2], 1)
        p = torch.softmax(torch.cat([s, sink], -1), -1)[..., :-1]
    else:
        p = torch.softmax(s, -1)
    out = p @ vr
    out.backward(do.to(dtype))
    grads = [x.grad for x in leaves] + ([s_leaf.grad] if s_leaf is not None else [])
    return out.detach(), grads


@pytest.mark.parametrize("batch,tokens", [(1, 1), (1, 129), (2, 1000)])
def test_train_step(batch, tokens):
    """examples/program/train_step.mlir: the forward with its LSE and the
    backward's kernels (dQ with the Delta workspace sized from the run-time
    length, then dK/dV summed over the GQA group) launched by the program,
    against float64 autograd by FlashAttention's rule (at most twice the
    error of the same math in bf16)."""
    prog = load("train_step")
    g = torch.Generator(device="cuda").manual_seed(batch * 7919 + tokens)
    rnd = lambda *s: torch.randn(*s, device="cuda", generator=g).to(torch.bfloat16)  # noqa: E731
    q, k, v = rnd(batch, 32, tokens, 128), rnd(batch, 8, tokens, 128), rnd(batch, 8, tokens, 128)
    do = rnd(batch, 32, tokens, 128)
    out, dq, dk, dv = prog.train_step(q, k, v, do)
    torch.cuda.synchronize()
    ref_o, ref = _grads(q, k, v, do, torch.float64, scale=0.0883883461, mask=causal)
    base_o, base = _grads(q, k, v, do, torch.bfloat16, scale=0.0883883461, mask=causal)
    check(out, ref_o, base_o, 1e-3)
    for got, r, n in zip((dq, dk, dv), ref, base):
        assert got.shape == r.shape
        check(got, r, n, 1e-3)


@pytest.mark.parametrize("batch,tokens", [(1, 1), (2, 300)])
def test_train_step_sinks_window(batch, tokens):
    """The same with sinks and a 128-key sliding window: the program also
    launches the sink-gradient kernel and returns dsinks."""
    prog = load("train_step")
    g = torch.Generator(device="cuda").manual_seed(batch * 104729 + tokens)
    rnd = lambda *s: torch.randn(*s, device="cuda", generator=g).to(torch.bfloat16)  # noqa: E731
    q, k, v = rnd(batch, 8, tokens, 64), rnd(batch, 2, tokens, 64), rnd(batch, 2, tokens, 64)
    do = rnd(batch, 8, tokens, 64)
    sinks = torch.randn(8, device="cuda", generator=g)
    out, dq, dk, dv, dsinks = prog.train_step_sinks(q, k, v, sinks, do)
    torch.cuda.synchronize()
    window = lambda i, j: (j <= i) & (i - j <= 127)  # noqa: E731
    ref_o, ref = _grads(q, k, v, do, torch.float64, scale=0.125, mask=window, sinks=sinks)
    base_o, base = _grads(q, k, v, do, torch.bfloat16, scale=0.125, mask=window, sinks=sinks)
    check(out, ref_o, base_o, 1e-3)
    for got, r, n in zip((dq, dk, dv, dsinks), ref, base):
        assert got.shape == r.shape
        check(got, r, n, 1e-3)
