# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""GPU correctness of attn's kernels (bundles from python -m attn.bundles
--gpu-suite, loaded from $ATTN_BUNDLES), against a float64 reference.

Rule (FlashAttention's): max|out - ref64| <= 2 * max|sdpa - ref64| + atol,
where sdpa is the same attention computed in the input dtype (torch SDPA with
an explicit bottom-right mask, or the same math in torch ops where SDPA has no
such variant: softcap, sinks). Rows with no admissible key must be exactly 0,
no NaN anywhere, and every output element must be written (the output is
poisoned with NaN first). Skips without a CUDA GPU.
"""

import contextlib
import math
import os
import sys

import numpy as np
import pytest

try:
    import torch
except ImportError:
    pytest.skip("PyTorch is not installed here: the GPU suite runs on a GPU machine "
                "(.ci/gpu-suite, see README)", allow_module_level=True)
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU on this machine: the GPU suite runs on the device machine",
                allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from attn import gpu  # noqa: E402
from seeds import stable_seed  # noqa: E402
import gpu_cases  # noqa: E402

BUNDLES = os.environ.get("ATTN_BUNDLES", "build/bundles")
TORCH_DTYPE = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
RESULTS = []


def admitted(c):
    """[Sq, Sk] boolean mask, bottom-right aligned."""
    sq, sk = c["sq"], c["sk"]
    i = torch.arange(sq, device="cuda")[:, None] + (sk - sq)
    j = torch.arange(sk, device="cuda")[None, :]
    if c["causal"]:
        return j <= i
    if c["window"]:
        left, right = c["window"]
        return (j >= i - left) & (j <= i + right)
    return torch.ones(sq, sk, dtype=torch.bool, device="cuda")


def reference(q, k, v, c, bias, sinks, dtype, explicit=False):
    """Attention with the math in `dtype` (float64 for the reference);
    SDPA where it has the variant, unless `explicit` (the backward's tests:
    the same math in torch ops, differentiable, 0 for rows without keys)."""
    to = lambda t: None if t is None else t.to(dtype)
    q, k, v, bias = to(q), to(k), to(v), to(bias)
    if c["layout"] == "bshd":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    g = c["hq"] // c["hkv"]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    scale = c["scale"] if c["scale"] is not None else 1 / math.sqrt(c["d"])
    mask = admitted(c)
    if c["softcap"] is None and not c["sinks"] and dtype != torch.float64 and not explicit:
        attn_mask = mask if bias is None else bias.masked_fill(~mask, float("-inf"))
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    else:
        s = (q @ k.transpose(-1, -2)) * scale
        if c["softcap"] is not None:
            s = c["softcap"] * torch.tanh(s / c["softcap"])
        if bias is not None:
            s = s + bias
        s = s.masked_fill(~mask, float("-inf"))
        if c["sinks"]:
            sk = sinks.to(dtype)[None, :, None, None].expand(s.shape[0], -1, s.shape[2], 1)
            s = torch.cat([s, sk], dim=-1)
        m = s.amax(-1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        p = torch.exp(s - m)
        l = p.sum(-1, keepdim=True)
        p = p / torch.where(l > 0, l, torch.ones_like(l))
        if c["sinks"]:
            p = p[..., :-1]
        o = p @ v
    if c["layout"] == "bshd":
        o = o.transpose(1, 2)
    return o


@pytest.mark.parametrize("c", gpu_cases.CASES, ids=[c["id"] for c in gpu_cases.CASES])
def test_gpu(c):
    torch.manual_seed(stable_seed(c["id"], 31))
    dt = TORCH_DTYPE[c["dtype"]]
    def shape(h, s, d):
        return (c["b"], s, h, d) if c["layout"] == "bshd" else (c["b"], h, s, d)
    q = torch.randn(shape(c["hq"], c["sq"], c["d"]), device="cuda", dtype=dt)
    k = torch.randn(shape(c["hkv"], c["sk"], c["d"]), device="cuda", dtype=dt)
    v = torch.randn(shape(c["hkv"], c["sk"], c["dv"]), device="cuda", dtype=dt)
    bias = sinks = None
    if c["bias"] is not None:
        full = (c["b"], c["hq"], c["sq"], c["sk"])
        bias = torch.randn([1 if bc else n for bc, n in zip(c["bias"], full)], device="cuda", dtype=dt)
    if c["sinks"]:
        sinks = torch.randn(c["hq"], device="cuda", dtype=torch.float32)
    out = torch.full(shape(c["hq"], c["sq"], c["dv"]), float("nan"), device="cuda", dtype=dt)
    res = gpu.attention(q, k, v, causal=c["causal"], window=c["window"], softcap=c["softcap"],
                        scale=c["scale"], bias=bias, sinks=sinks, layout=c["layout"],
                        return_lse=c["lse"], bundles=BUNDLES, out=out)
    torch.cuda.synchronize()
    o = res[0] if c["lse"] else res
    assert not torch.isnan(o).any(), "NaN in the output (unwritten or 0/0)"
    ref = reference(q, k, v, c, bias, sinks, torch.float64)
    low = reference(q, k, v, c, bias, sinks, dt).to(torch.float64)
    empty = ~admitted(c).any(-1)  # rows with no admissible key
    if empty.any() and not c["sinks"]:
        rows = o.transpose(1, 2) if c["layout"] == "bshd" else o
        assert (rows[:, :, empty] == 0).all(), "fully masked rows must be 0"
        keep = ~empty
        sel = lambda t: (t.transpose(1, 2) if c["layout"] == "bshd" else t)[:, :, keep]
        o_, ref_, low_ = sel(o.double()), sel(ref), sel(low)
    else:
        o_, ref_, low_ = o.double(), ref, low
    err = (o_ - ref_).abs().max().item()
    base = (low_ - ref_).abs().max().item()
    atol = 1e-3 if c["dtype"] != "f32" else 1e-5
    RESULTS.append((c["id"], err, base))
    print(f"\n{c['id']}: max|out-ref64| = {err:.3e}, max|{c['dtype']} math - ref64| = {base:.3e}")
    assert err <= 2 * base + atol, f"max error {err:.3e} > 2 x {base:.3e} + {atol}"
    if c["lse"]:
        lse = res[1].double()
        assert not torch.isnan(lse).any()


def _dense_choice(mask, d=128):
    """The suite's bundles' kernels for bf16 D = Dv = `d` bhsd with `mask`:
    a KernelChoice, its default and its length alternatives
    (docs/design-length-choice.md), which are built for sm_90a."""
    if torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("length alternatives are built for sm_90a")
    want = {"dtype": "bf16", "head_dim": d, "value_head_dim": d, "layout": "bhsd",
            "mask": mask, "softcap": None, "bias": False, "sinks": False, "lse": False}
    choice = gpu._find(gpu.load_bundles(BUNDLES), want)
    assert isinstance(choice, gpu.KernelChoice), choice.manifest["entry"]
    return choice


def test_length_alternative_is_the_long_cases_kernel():
    """d128 non-causal kernels come with their 176-key length alternative:
    the long_keys_alt cases run it, long_keys_default_8191 the default."""
    choice = _dense_choice("none")
    sizes = {"B": 1, "Hq": 4, "Hkv": 2, "Sq": 200}
    assert choice.pick(dict(sizes, Sk=8195)).manifest["tile"]["block_kv"] == 176
    assert choice.pick(dict(sizes, Sk=8191)) is choice.default
    assert choice.default.manifest["tile"]["block_kv"] == 128


def test_causal_length_alternative_is_the_short_cases_kernel():
    """Causal d128 kernels come with a 64-row, 64-key alternative preferred
    through 2048 keys: the short causal cases run it,
    causal_default_2049_sq_lt_sk and the longer ones the default."""
    choice = _dense_choice("causal")
    sizes = {"B": 1, "Hq": 4, "Hkv": 4, "Sq": 300}
    short = choice.pick(dict(sizes, Sk=2048)).manifest
    assert (short["tile"]["block_q"], short["tile"]["block_kv"]) == (64, 64)
    assert choice.pick(dict(sizes, Sk=1)).manifest is short
    assert choice.pick(dict(sizes, Sk=2049)) is choice.default
    assert choice.default.manifest["tile"]["block_q"] == 128


def test_causal_d64_length_alternative_is_the_short_cases_kernel():
    """Causal d64 kernels come with a 64-key alternative (three blocks an SM)
    preferred below 1792 keys: the causal_d64_alt cases run it,
    causal_d64_default_1792 and the longer ones the default (128 keys)."""
    choice = _dense_choice("causal", d=64)
    sizes = {"B": 1, "Hq": 4, "Hkv": 4, "Sq": 300}
    short = choice.pick(dict(sizes, Sk=1791)).manifest
    assert (short["tile"]["block_q"], short["tile"]["block_kv"]) == (64, 64)
    assert choice.pick(dict(sizes, Sk=1792)) is choice.default
    assert choice.default.manifest["tile"]["block_kv"] == 128


def _fp8_inputs(c):
    """q, k, v quantized to e4m3 with descales (per tensor or per (batch, KV
    head), amax / 448 of scaled normals), and their dequantized float64
    values."""
    bshd = c["layout"] == "bshd"
    def make(h, s, d, spread):
        x = torch.randn((c["b"], s, h, d) if bshd else (c["b"], h, s, d), device="cuda") * spread
        hx = x.transpose(1, 2) if bshd else x  # [B, H, S, D]
        g = h // c["hkv"]
        grouped = hx.reshape(c["b"], c["hkv"], g * s, d)  # a KV head's query heads together
        if c["descale"] == "head":
            amax = grouped.abs().amax(dim=(2, 3))  # [B, Hkv]
            per_row = amax.repeat_interleave(g, 1)[:, :, None, None]
        else:
            amax = grouped.abs().amax()
            per_row = amax
        descale = (amax / 448.0).float().contiguous()
        ds = per_row / 448.0
        x8 = (hx / ds).to(torch.float8_e4m3fn)
        deq = x8.double() * ds.double()
        if bshd:
            x8, deq = x8.transpose(1, 2).contiguous(), deq.transpose(1, 2).contiguous()
        return x8, descale, deq
    q8, dq, qd = make(c["hq"], c["sq"], c["d"], 1.0)
    k8, dk, kd = make(c["hkv"], c["sk"], c["d"], 2.0)
    if c.get("neg_k"):
        k8, dk = (-k8.float()).to(torch.float8_e4m3fn), -dk  # the same values
    v8, dv, vd = make(c["hkv"], c["sk"], c["dv"], 0.5)
    return (q8, k8, v8), (dq, dk, dv), (qd, kd, vd)


@pytest.mark.parametrize("c", gpu_cases.FP8_CASES, ids=[c["id"] for c in gpu_cases.FP8_CASES])
def test_gpu_fp8(c):
    """FP8 forward against float64 attention of the dequantized inputs, with
    FlashAttention-3's FP8 rule: max|out - ref64| <= 2 * max|native - ref64|,
    where native is the same math in bf16 with the normalized P rounded to
    e4m3 (FA3's intermediate_dtype); plus NaN-free, fully written output
    and LSE."""
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("FP8 attention runs on the sm_90a kernel (a Hopper GPU)")
    torch.manual_seed(stable_seed(c["id"], 37))
    (q8, k8, v8), (dq, dk, dv), (qd, kd, vd) = _fp8_inputs(c)
    sinks = torch.randn(c["hq"], device="cuda") if c["sinks"] else None
    out_dt = TORCH_DTYPE[c["out_dtype"]]
    res = gpu.attention(q8, k8, v8, causal=c["causal"], window=c["window"],
                        softcap=c["softcap"], scale=c["scale"], sinks=sinks,
                        layout=c["layout"], return_lse=c["lse"], bundles=BUNDLES,
                        q_descale=dq, k_descale=dk, v_descale=dv, out_dtype=out_dt)
    torch.cuda.synchronize()
    o = res[0] if c["lse"] else res
    assert o.dtype == out_dt
    assert not torch.isnan(o).any(), "NaN in the output"
    ref = reference(qd, kd, vd, c, None, sinks, torch.float64)
    # The native math: bf16 scores and softmax, P normalized and rounded to
    # e4m3, P.V in bf16.
    native = _fp8_native(qd, kd, vd, c, sinks).double()
    err = (o.double() - ref).abs().max().item()
    base = (native - ref).abs().max().item()
    RESULTS.append((c["id"], err, base))
    print(f"\n{c['id']}: max|out-ref64| = {err:.3e}, max|native fp8 - ref64| = {base:.3e}")
    assert err <= 2 * base, f"max error {err:.3e} > 2 x {base:.3e}"
    if c["lse"]:
        lse = res[1].double()
        assert not torch.isnan(lse).any()
        lse_ref = _lse64(qd, kd, c, sinks)
        finite = torch.isfinite(lse_ref)
        assert torch.equal(torch.isfinite(lse), finite)
        assert (lse[finite] - lse_ref[finite]).abs().max().item() < 1e-2


def _scores64(q, k, c):
    """Masked float64 logits [B, Hq, Sq, Sk] (with softcap) of dequantized q, k."""
    if c["layout"] == "bshd":
        q, k = q.transpose(1, 2), k.transpose(1, 2)
    k = k.repeat_interleave(c["hq"] // c["hkv"], 1)
    scale = c["scale"] if c["scale"] is not None else 1 / math.sqrt(c["d"])
    s = (q @ k.transpose(-1, -2)) * scale
    if c["softcap"] is not None:
        s = c["softcap"] * torch.tanh(s / c["softcap"])
    return s.masked_fill(~admitted(c), float("-inf"))


def _lse64(q, k, c, sinks):
    s = _scores64(q, k, c)
    if sinks is not None:
        s = torch.cat([s, sinks.double()[None, :, None, None].expand(s.shape[0], -1, s.shape[2], 1)], -1)
    return torch.logsumexp(s, -1)


def _fp8_native(q, k, v, c, sinks):
    bf = torch.bfloat16
    s = _scores64(q.to(bf).double(), k.to(bf).double(), c).to(bf).float()
    if sinks is not None:
        s = torch.cat([s, sinks[None, :, None, None].expand(s.shape[0], -1, s.shape[2], 1)], -1)
    m = s.amax(-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(s - m)
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-30)
    if sinks is not None:
        p = p[..., :-1]
    p = p.to(torch.float8_e4m3fn).to(bf)
    vv = v.transpose(1, 2) if c["layout"] == "bshd" else v
    o = p @ vv.to(bf).repeat_interleave(c["hq"] // c["hkv"], 1)
    return o.transpose(1, 2) if c["layout"] == "bshd" else o


@contextlib.contextmanager
def no_compiler():
    """attn.jit finds no attn-compile (ATTN_COMPILE names a missing file)."""
    saved = os.environ.get("ATTN_COMPILE")
    os.environ["ATTN_COMPILE"] = os.path.join(os.devnull, "no-attn-compile")
    try:
        yield
    finally:
        if saved is None:
            del os.environ["ATTN_COMPILE"]
        else:
            os.environ["ATTN_COMPILE"] = saved


def test_unsupported_inputs_raise():
    """Inputs the kernels do not support raise before anything is launched."""
    q = torch.randn(1, 4, 16, 64, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 2, 16, 64, device="cuda", dtype=torch.bfloat16)
    call = lambda *a, **kw: gpu.attention(*a, bundles=BUNDLES, **kw)
    with pytest.raises(ValueError, match="unsupported dtype"):
        call(q.double(), k.double(), k.double())
    with pytest.raises(ValueError, match="contiguous"):
        call(q.transpose(1, 2), k, k)
    with pytest.raises(ValueError, match="multiple of key/value heads"):
        call(torch.randn(1, 3, 16, 64, device="cuda", dtype=torch.bfloat16), k, k)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        call(q, k, k[:, :, :8].contiguous())
    with pytest.raises(ValueError, match="either causal=True or window"):
        call(q, k, k, causal=True, window=(4, 0))
    with pytest.raises(ValueError, match="not broadcastable"):
        call(q, k, k, bias=torch.randn(1, 3, 16, 16, device="cuda", dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="CUDA tensor"):
        call(q.cpu(), k, k)
    # A variant no bundle holds is compiled on first use (attn.jit); with no
    # compiler, the error names the command that compiles it ahead of time.
    with no_compiler(), pytest.raises(LookupError, match="attn.bundles --variant"):
        call(torch.randn(1, 4, 16, 80, device="cuda", dtype=torch.bfloat16),
             torch.randn(1, 2, 16, 80, device="cuda", dtype=torch.bfloat16),
             torch.randn(1, 2, 16, 80, device="cuda", dtype=torch.bfloat16))


def test_misaligned_input_raises():
    """A contiguous tensor whose storage starts mid-way (not 16-byte aligned)
    is refused: the kernels copy 16-byte chunks."""
    shape = (1, 8, 113, 128)
    n = math.prod(shape)
    q = torch.randn(n + 1, device="cuda", dtype=torch.bfloat16)[1:].view(shape)
    k = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    assert q.is_contiguous()
    with pytest.raises(ValueError, match="16-byte aligned"):
        gpu.attention(q, k, k, bundles=BUNDLES)


def paged_inputs(c, tail="nan_page"):
    """Caches with every slot NaN except the keys of the sequences, pages in a
    random order, and block-table entries past a sequence's pages holding
    `tail`: the id of a NaN page ("nan_page"), -1 ("minus_one") or the
    table type's largest value ("huge"). Nothing unused may reach an output
    or be dereferenced. HND caches are NHD ones transposed (for page size 1
    or one KV head torch keeps the transposed strides of the size-1
    dimension, as a user's cache would have them)."""
    torch.manual_seed(stable_seed(c["id"], 31))
    dt = TORCH_DTYPE[c["dtype"]]
    page, hkv, d, dv, lens = c["page"], c["hkv"], c["d"], c["dv"], c["lens"]
    need = [-(-n // page) for n in lens]
    max_pages = max(max(need), 1) + 1
    total = sum(need) + 2  # + the NaN page and one never referenced
    nan_page = total - 1
    kc = torch.full((total, page, hkv, d), float("nan"), device="cuda", dtype=dt)
    vc = torch.full((total, page, hkv, dv), float("nan"), device="cuda", dtype=dt)
    order = torch.randperm(total - 2).tolist()
    table = torch.full((len(lens), max_pages), nan_page, dtype=torch.int64)
    ks, vs = [], []
    for i, n in enumerate(lens):
        k = torch.randn(n, hkv, d, device="cuda", dtype=dt)
        v = k[..., :dv] if c["v_prefix"] else torch.randn(n, hkv, dv, device="cuda", dtype=dt)
        ks.append(k)
        vs.append(v)
        for p in range(need[i]):
            pid = order.pop()
            table[i, p] = pid
            rows = slice(p * page, min(n, (p + 1) * page))
            cnt = rows.stop - rows.start
            kc[pid, :cnt] = k[rows]
            vc[pid, :cnt] = v[rows]
        if tail != "nan_page":
            table[i, need[i]:] = -1 if tail == "minus_one" else torch.iinfo(
                torch.int32 if c["table_dtype"] == "i32" else torch.int64).max
    if c["layout"] == "hnd":
        kc, vc = kc.transpose(1, 2).contiguous(), vc.transpose(1, 2).contiguous()
    if c["v_prefix"]:
        vc = kc[..., :dv]  # MLA: the values are the latent part of the key rows
    table = table.to(torch.int32 if c["table_dtype"] == "i32" else torch.int64).cuda()
    lens_t = torch.tensor(lens, dtype=torch.int32, device="cuda")
    q = torch.randn(len(lens), c["sq"], c["hq"], d, device="cuda", dtype=dt)
    sinks = torch.randn(c["hq"], device="cuda", dtype=torch.float32) if c["sinks"] else None
    return q, kc, vc, table, lens_t, ks, vs, sinks


def run_paged(c, inputs):
    """gpu.paged_attention on `inputs` into an output poisoned with NaN (an
    element left unwritten stays NaN)."""
    q, kc, vc, table, lens, _, _, sinks = inputs
    out = torch.full(q.shape[:3] + (c["dv"],), float("nan"), device="cuda", dtype=q.dtype)
    res = gpu.paged_attention(q, kc, vc, table, lens, causal=c["causal"], window=c["window"],
                              softcap=c["softcap"], scale=c["scale"], sinks=sinks,
                              cache_layout=c["layout"], return_lse=c["lse"],
                              num_splits_override=c["splits"], bundles=BUNDLES, out=out)
    torch.cuda.synchronize()
    return res if c["lse"] else (res, None)


def check_paged(c, inputs, o, lse):
    """The output against the float64 reference: FlashAttention's rule per
    sequence, exact zeros for rows without keys (sinks aside), the LSE."""
    from attn.reference import paged_attention_reference
    q, kc, vc, table, lens, ks, vs, sinks = inputs
    mask = "window" if c["window"] else ("causal" if c["causal"] else "none")
    left, right = c["window"] or (0, 0)
    o = o.double().cpu()
    assert not torch.isnan(o).any(), \
        "NaN in the output: an unused cache slot was read, or an element was not written"
    ref, ref_lse = paged_attention_reference(
        q.double().cpu().numpy(), kc.double().cpu().numpy(), vc.double().cpu().numpy(),
        table.cpu().numpy(), lens.cpu().numpy(), cache_layout=c["layout"], mask=mask,
        left=left, right=right, scale=c["scale"], softcap=c["softcap"],
        sinks=None if sinks is None else sinks.double().cpu().numpy())
    ref, ref_lse = torch.from_numpy(ref), torch.from_numpy(ref_lse)
    worst, base = 0.0, 0.0
    for i, n in enumerate(c["lens"]):
        if sinks is None:
            # Rows that admit no key (an empty sequence, or query tokens
            # before a short sequence's first key) give exact zeros.
            empty = torch.isneginf(ref_lse[i]).transpose(0, 1)           # [Sq, Hq]
            assert (o[i][empty] == 0).all(), "a row without keys must give 0"
        if n == 0:
            continue
        # The same attention with the math in the input precision, on the
        # sequence's keys laid out contiguously: the error floor to meet
        # (SDPA leaves rows without keys NaN: they are 0).
        cc = dict(layout="bshd", hq=c["hq"], hkv=c["hkv"], sq=c["sq"], sk=n, d=c["d"],
                  scale=c["scale"], softcap=c["softcap"], sinks=c["sinks"],
                  causal=c["causal"], window=c["window"])
        low = reference(q[i:i + 1], ks[i][None], vs[i][None], cc, None, sinks,
                        TORCH_DTYPE[c["dtype"]]).double().cpu()[0].nan_to_num(0.0)
        worst = max(worst, (o[i] - ref[i]).abs().max().item())
        base = max(base, (low - ref[i]).abs().max().item())
    print(f"\n{c['id']} sq={c['sq']}: max|out-ref64| = {worst:.3e}, "
          f"max|{c['dtype']} math - ref64| = {base:.3e}")
    assert worst <= 2 * base + 1e-3, f"max error {worst:.3e} > 2 x {base:.3e} + 1e-3"
    if lse is not None:
        lse = lse.double().cpu()
        assert torch.equal(torch.isinf(lse), torch.isinf(ref_lse)), "LSE -inf pattern differs"
        fin = torch.isfinite(ref_lse)
        lerr = (lse[fin] - ref_lse[fin]).abs().max().item() if fin.any() else 0.0
        assert lerr < 2e-2, f"LSE error {lerr:.3e}"


@pytest.mark.parametrize("c", gpu_cases.PAGED_CASES, ids=[c["id"] for c in gpu_cases.PAGED_CASES])
def test_gpu_paged(c):
    inputs = paged_inputs(c)
    check_paged(c, inputs, *run_paged(c, inputs))


@pytest.mark.parametrize("c", gpu_cases.POISON_CASES, ids=[c["id"] for c in gpu_cases.POISON_CASES])
def test_gpu_paged_poisoned(c):
    """Issue 17's matrix: NaN in every unused slot and page, table entries
    past the live pages a NaN page, -1 and a huge index in turn (the output
    must not change by a bit: those entries are never read), lengths 0, 1,
    P - 1, P, P + 1 and a longer one in one batch, 1 and 16 query tokens.
    .ci/gpu-suite runs it under compute-sanitizer memcheck too."""
    for sq in (1, 16):
        cs = dict(c, sq=sq)
        first = None
        for tail in gpu_cases.POISON_TABLE_TAILS:
            inputs = paged_inputs(cs, tail)
            o, lse = run_paged(cs, inputs)
            if first is None:
                check_paged(cs, inputs, o, lse)
                first = o
            else:
                assert torch.equal(o, first), \
                    f"the table entries past the live pages ({tail}) changed the output"


def test_gpu_paged_issue17_page1_hnd_f16_d256():
    """The report of issue 17 as it was made: fp16, head dim 256, 4 query
    heads over 4 KV heads, pages of 1 in random order, HND caches transposed
    from NHD ones, 12 sequences of 54 tokens, one new token each, causal,
    NaN in every slot without a live token."""
    c = gpu_cases.ISSUE17_CASE
    inputs = paged_inputs(c)
    assert inputs[1].stride(2) != c["d"], "the HND cache should keep torch's transposed strides"
    check_paged(c, inputs, *run_paged(c, inputs))


def test_gpu_paged_splits_agree():
    """The split count (flash-decoding) changes only rounding."""
    c = gpu_cases.PAGED_CASES[0]
    q, kc, vc, table, lens, *_ = paged_inputs(c)
    outs = [gpu.paged_attention(q, kc, vc, table, lens, causal=True, bundles=BUNDLES,
                                num_splits_override=s).double() for s in (1, 3, 16, 64)]
    for o in outs[1:]:
        assert (o - outs[0]).abs().max().item() < 2e-2
    # One-token decode with a [B, Hq, D] query gives the same output.
    o3 = gpu.paged_attention(q[:, 0].contiguous(), kc, vc, table, lens, causal=True,
                             bundles=BUNDLES, num_splits_override=3)
    assert o3.shape == (q.shape[0], q.shape[2], q.shape[3])
    assert torch.equal(o3, gpu.paged_attention(q, kc, vc, table, lens, causal=True,
                                               bundles=BUNDLES, num_splits_override=3)[:, 0])


def test_gpu_paged_unsupported_inputs_raise():
    """Paged inputs the kernels do not take raise before anything is launched."""
    c = gpu_cases.PAGED_CASES[1]  # page 1, GQA 16/4
    q, kc, vc, table, lens, *_ = paged_inputs(c)
    call = lambda *a, **kw: gpu.paged_attention(*a, bundles=BUNDLES, causal=True, **kw)
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        call(q.float(), kc.float(), vc.float(), table, lens)
    with pytest.raises(ValueError, match="must be contiguous"):
        call(q.transpose(2, 3), kc, vc, table, lens)
    with pytest.raises(ValueError, match="v_cache must be contiguous or the first Dv columns"):
        call(q, kc, vc.transpose(0, 2), table, lens)
    with pytest.raises(ValueError, match="multiple of KV heads"):
        call(q[:, :, :6].contiguous(), kc, vc, table, lens)
    with pytest.raises(ValueError, match="block_table must be"):
        call(q, kc, vc, table.float(), lens)
    with pytest.raises(ValueError, match="seq_lens must be"):
        call(q, kc, vc, table, lens[:1])
    with pytest.raises(ValueError, match="cache_layout"):
        call(q, kc, vc, table, lens, cache_layout="nth")
    with pytest.raises(ValueError, match="CUDA tensor"):
        call(q.cpu(), kc, vc, table, lens)
    with no_compiler(), pytest.raises(LookupError, match="attn.bundles --variant"):
        call(q, kc, vc, table, lens, softcap=7.0)


def gated_inputs(c):
    """Unit-norm keys when the kernel does not normalize them (a stable
    recurrence), log-sigmoid-like gates in [-2, 0), beta in (0, 1)."""
    torch.manual_seed(stable_seed(c["id"], 31))
    dt = TORCH_DTYPE[c["dtype"]]
    b, t, hk, hv, d, dv = c["b"], c["t"], c["hk"], c["hv"], c["d"], c["dv"]
    q = torch.randn(b, t, hk, d, device="cuda")
    k = torch.randn(b, t, hk, d, device="cuda")
    if not c["l2norm"]:
        q, k = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
    v = torch.randn(b, t, hv, dv, device="cuda")
    gshape = (b, t, hv, d) if c["gate"] == "channel" else (b, t, hv)
    g = -2 * torch.sigmoid(torch.randn(gshape, device="cuda") - 2)
    if c["gate_dtype"] != "f32":
        g = g.to(dt)
    beta = torch.sigmoid(torch.randn(b, t, hv, device="cuda"))
    s0 = torch.randn(b, hv, d, dv, device="cuda") * 0.5 if c["init"] else None
    return q.to(dt), k.to(dt), v.to(dt), g.contiguous(), beta, s0


@pytest.mark.parametrize("c", gpu_cases.GATED_CASES, ids=[c["id"] for c in gpu_cases.GATED_CASES])
def test_gpu_gated_delta(c):
    from attn.reference import gated_delta_reference
    q, k, v, g, beta, s0 = gated_inputs(c)
    out, state = gpu.gated_delta_rule(q, k, v, g, beta, initial_state=s0, qk_l2norm=c["l2norm"],
                                      scale=c["scale"], bundles=BUNDLES)
    torch.cuda.synchronize()
    np64 = lambda x: None if x is None else x.double().cpu().numpy()
    ref_o, ref_s = gated_delta_reference(np64(q), np64(k), np64(v), np64(g), np64(beta),
                                         initial_state=np64(s0), qk_l2norm=c["l2norm"],
                                         scale=c["scale"])
    rel = lambda x, r: (np.sqrt(((x - r) ** 2).mean()) / np.sqrt((r ** 2).mean()))
    eo, es = rel(np64(out), ref_o), rel(np64(state), ref_s)
    print(f"\n{c['id']}: rms rel out {eo:.2e}, state {es:.2e}")
    assert not torch.isnan(out).any() and not torch.isnan(state).any()
    assert eo < 5e-3 and es < 5e-3, f"RMS relative error out {eo:.2e}, state {es:.2e} (>= 5e-3)"


def test_gpu_gated_delta_chunks_continue():
    """Two calls chained through the state equal one call over the whole
    sequence (the state is the recurrence's, not an artifact of chunking)."""
    c = dict(gpu_cases.GATED_CASES[4])
    q, k, v, g, beta, _ = gated_inputs(c)
    whole_o, whole_s = gpu.gated_delta_rule(q, k, v, g, beta, qk_l2norm=True, scale=c["scale"],
                                            bundles=BUNDLES)
    cut = 333
    part = lambda x, sl: x[:, sl].contiguous()
    o1, s1 = gpu.gated_delta_rule(*(part(x, slice(0, cut)) for x in (q, k, v, g, beta)),
                                  qk_l2norm=True, scale=c["scale"], bundles=BUNDLES)
    o2, s2 = gpu.gated_delta_rule(*(part(x, slice(cut, None)) for x in (q, k, v, g, beta)),
                                  initial_state=s1, qk_l2norm=True, scale=c["scale"],
                                  bundles=BUNDLES)
    torch.testing.assert_close(torch.cat([o1, o2], 1).float(), whole_o.float(), atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(s2, whole_s, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("cid", ["gdn_decode_t1_init", "kda_decode_t1_d100", "gdn_t63_d64_f16"])
def test_gpu_gated_delta_paths_agree(cid):
    """The recurrent kernel (decode) and the chunked kernels give the same
    outputs and states: the recurrent kernel's products are f32 FMA, the
    chunked kernels' tf32 mma (operands rounded to 10-bit mantissas, f32
    accumulation; about 3e-4 RMS relative error against float64 in the
    final states), so the states agree to 1e-3 RMS relative and 2e-3 at
    most per element."""
    c = next(x for x in gpu_cases.GATED_CASES if x["id"] == cid)
    q, k, v, g, beta, s0 = gated_inputs(c)
    res = [gpu.gated_delta_rule(q, k, v, g, beta, initial_state=s0, qk_l2norm=c["l2norm"],
                                scale=c["scale"], bundles=BUNDLES, path=p)
           for p in ("recurrent", "chunked")]
    torch.testing.assert_close(res[0][0].float(), res[1][0].float(), atol=2e-2, rtol=2e-2)
    diff = res[0][1] - res[1][1]
    rms = (diff.square().mean().sqrt() / res[0][1].square().mean().sqrt()).item()
    assert rms < 1e-3 and diff.abs().max().item() < 2e-3, \
        f"states differ: RMS relative {rms:.2e}, max {diff.abs().max().item():.2e}"


def sparse_inputs(c, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    b, sq, sk, n, hq = c["b"], c["sq"], c["sk"], c["top_k"], c["hq"]
    q = torch.randn(b, sq, hq, c["d"], device="cuda", generator=gen).to(torch.bfloat16)
    kv = torch.randn(b, sk, 1, c["d"], device="cuda", generator=gen).to(torch.bfloat16)
    # Distinct picks among the keys and 64 indices past them (some future
    # keys for causal rows), a tenth of them -1; every 7th key never.
    scores = torch.rand(b, sq, sk + 64, device="cuda", generator=gen)
    # Every 7th key is never picked: rows no index selects (NaN in the test).
    scores[..., :sk:7] = -1.0
    idx = scores.topk(n, dim=-1).indices
    drop = torch.rand(b, sq, n, device="cuda", generator=gen) < 0.1
    idx = torch.where(drop, torch.full_like(idx, -1), idx)
    if c["all_invalid_row"]:
        idx[0, 0] = torch.where(torch.arange(n, device="cuda") % 2 == 0, -1, sk + 1)
    return q, kv, idx.view(b, sq, 1, n).to(torch.int32)


def sparse_reference(q, kv, idx, c, dtype):
    """Dense attention over the selected keys with the math in `dtype`
    (float64: the reference; bfloat16 inputs with f32 accumulation: the
    floor), and the LSE."""
    b, sq, hq, _ = q.shape
    sk, dv = kv.shape[1], c["dv"]
    i = idx.view(b, sq, -1).long()
    ok = (i >= 0) & (i < sk)
    sel = torch.zeros(b, sq, sk + 1, dtype=torch.bool, device=q.device)
    sel.scatter_(2, torch.where(ok, i, torch.full_like(i, sk)), True)
    sel = sel[..., :sk]
    if c["causal"]:
        pos = torch.arange(sq, device=q.device) + sk - sq
        sel &= torch.arange(sk, device=q.device)[None, None, :] <= pos[None, :, None]
    work = torch.float64 if dtype == torch.float64 else torch.float32
    qq, kk = q.to(work), kv[:, :, 0].to(work)
    s = torch.einsum("bthd,bsd->bths", qq, kk) * 0.1352
    s = s.masked_fill(~sel[:, :, None, :], float("-inf"))
    m = s.amax(-1, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    p = torch.exp(s - m)
    z = p.sum(-1, keepdim=True)
    lse = (m + torch.log(z))[..., 0].permute(0, 2, 1)
    if dtype != torch.float64:
        p = p.to(dtype).to(work)
    out = torch.einsum("bths,bsd->bthd", p, kk[..., :dv]) / torch.where(z > 0, z, torch.ones_like(z))
    return out, lse


def unselected_rows(idx, sk, block, causal, sq):
    """[B, Sk, Hkv]: the key rows that no valid entry of `idx` [B, Sq, Hkv,
    N] selects (blocks of `block` keys; -1, out-of-range and, with causal,
    future entries and keys select nothing)."""
    b, _, hkv, _ = idx.shape
    i = idx.long()
    nb = -(-sk // block)
    pos = torch.arange(sq, device=idx.device) + sk - sq
    ok = (i >= 0) & (i < nb)
    if causal:
        ok &= i * block <= pos[None, :, None, None]
    hit = torch.zeros(b, sq, hkv, nb + 1, dtype=torch.bool, device=idx.device)
    hit.scatter_(3, torch.where(ok, i, torch.full_like(i, nb)), True)
    keys = torch.arange(sk, device=idx.device)
    sel = hit[..., keys // block]                                              # [B, Sq, Hkv, Sk]
    if causal:
        sel &= keys[None, None, None, :] <= pos[None, :, None, None]
    return ~sel.any(1).permute(0, 2, 1)


@pytest.mark.parametrize("c", gpu_cases.SPARSE_CASES, ids=[c["id"] for c in gpu_cases.SPARSE_CASES])
def test_gpu_sparse_attention(c):
    q, kv, idx = sparse_inputs(c)
    # NaN in every key/value row no valid index selects: no kernel may read
    # it (the reference takes the clean rows).
    unused = unselected_rows(idx, c["sk"], c["block"], c["causal"], c["sq"])
    assert unused.any(), "the case should leave some keys unselected"
    poisoned = kv.masked_fill(unused[..., None], float("nan"))
    res = gpu.sparse_attention(q, poisoned, poisoned[..., :c["dv"]], idx, block_size=c["block"],
                               causal=c["causal"], scale=0.1352, return_lse=c["lse"],
                               bundles=BUNDLES)
    o, lse = res if c["lse"] else (res, None)
    torch.cuda.synchronize()
    assert not torch.isnan(o).any()
    ref, ref_lse = sparse_reference(q, kv, idx, c, torch.float64)
    low, _ = sparse_reference(q, kv, idx, c, torch.bfloat16)
    err = (o.double() - ref).abs().max().item()
    base = (low.to(torch.bfloat16).double() - ref).abs().max().item()
    print(f"\n{c['id']}: max|out-ref64| = {err:.3e}, max|bf16 math - ref64| = {base:.3e}")
    if c["all_invalid_row"]:
        assert (o[0, 0] == 0).all(), "a row with no valid index must give zeros"
    assert err <= 2 * base + 1e-3, f"max error {err:.3e} > 2 x {base:.3e} + 1e-3"
    if lse is not None:
        assert torch.equal(torch.isinf(lse), torch.isinf(ref_lse)), "LSE -inf pattern differs"
        fin = torch.isfinite(ref_lse)
        assert (lse.double()[fin] - ref_lse[fin]).abs().max().item() < 2e-2


def nsa_inputs(c, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    b, t, s, hq, hkv, d, dv = c["b"], c["t"], c["s"], c["hq"], c["hkv"], c["d"], c["dv"]
    tc = max(0, (s - c["cmp_block"]) // c["cmp_stride"] + 1 - c["missing"])

    def rnd(*shape):
        return torch.randn(*shape, device="cuda", generator=gen).to(torch.bfloat16)
    q, k, v = rnd(b, t, hq, d), rnd(b, s, hkv, d), rnd(b, s, hkv, dv)
    kc, vc = rnd(b, tc, hkv, d), rnd(b, tc, hkv, dv)
    gates = torch.sigmoid(torch.randn(b, t, hq, 3, device="cuda", generator=gen))
    return q, k, v, kc, vc, gates.to(getattr(torch, {"bf16": "bfloat16"}.get(c["gates"],
                                                                           "float32")))


def nsa_block_scores(q, kc, c):
    """NSA's selection scores in float64 (the op's definition, vectorized):
    [B, T, Hkv, NB], the candidate mask and the forced-block mask."""
    b, t, hq, d = q.shape
    s, hkv, tc = c["s"], c["hkv"], kc.shape[1]
    l, stride, sel = c["cmp_block"], c["cmp_stride"], c["sel_block"]
    nb = -(-s // sel)
    pos = torch.arange(t, device=q.device) + s - t
    cpos = torch.arange(tc, device=q.device)
    vis = cpos[None, :] * stride + l <= pos[:, None] + 1                       # [T, Tc]
    qq = q.double().view(b, t, hkv, hq // hkv, d)
    sc = torch.einsum("btgjd,bcgd->btgjc", qq, kc.double()) / math.sqrt(d)
    sc = sc.masked_fill(~vis[None, :, None, None, :], float("-inf"))
    p = torch.softmax(sc, -1).nan_to_num(0.0).sum(3)                           # [B, T, Hkv, Tc]
    j = torch.arange(nb, device=q.device)
    overlap = ((cpos[:, None] * stride < (j[None, :] + 1) * sel)
               & (cpos[:, None] * stride + l > j[None, :] * sel)).double()     # [Tc, NB]
    scores = p @ overlap
    last = pos // sel
    cand = j[None, :] <= torch.minimum(last, torch.tensor(nb - 1, device=q.device))[:, None]
    forced = cand & ((j[None, :] < 1) | (j[None, :] > last[:, None] - 2))
    return scores, cand, forced, (p, vis)


def nsa_branch_reference(q, k, v, kc, vc, gates, indices, c, low):
    """The NSA output in float64 (low: with P rounded to bf16, the floor)
    given the selected blocks, token chunk by token chunk."""
    b, t, hq, d = q.shape
    s, hkv, tc = c["s"], c["hkv"], kc.shape[1]
    group, sel = hq // hkv, c["sel_block"]
    out = torch.empty(b, t, hq, v.shape[3], dtype=torch.float64, device=q.device)
    pos_all = torch.arange(t, device=q.device) + s - t
    keys = torch.arange(s, device=q.device)
    cpos = torch.arange(tc, device=q.device)

    def attend(qq, kk, vv, mask):  # qq [B, n, Hq, D], kk [B, S, Hkv, D], mask [B|1, n, Hkv|1, S]
        kk = kk.double().repeat_interleave(group, 2)
        vv = vv.double().repeat_interleave(group, 2)
        sc = torch.einsum("bnhd,bshd->bnhs", qq, kk) / math.sqrt(d)
        m = mask.repeat_interleave(group, 2) if mask.shape[2] > 1 else mask
        sc = sc.masked_fill(~m, float("-inf"))
        p = torch.softmax(sc, -1).nan_to_num(0.0)
        if low:
            p = p.to(torch.bfloat16).double()
        return torch.einsum("bnhs,bshd->bnhd", p, vv)
    for t0 in range(0, t, 256):
        t1 = min(t, t0 + 256)
        qq, pos = q[:, t0:t1].double(), pos_all[t0:t1]
        cmask = (cpos[None, :] * c["cmp_stride"] + c["cmp_block"] <= pos[:, None] + 1)
        o_cmp = attend(qq, kc, vc, cmask[None, :, None, :])
        blk = indices[:, t0:t1].long()                                         # [B, n, Hkv, N]
        chosen = torch.zeros(b, t1 - t0, hkv, -(-s // sel) + 1, dtype=torch.bool, device=q.device)
        chosen.scatter_(3, torch.where(blk >= 0, blk, torch.full_like(blk, chosen.shape[3] - 1)), True)
        smask = chosen[..., keys // sel] & (keys[None, :] <= pos[:, None])[None, :, None, :]
        o_sel = attend(qq, k, v, smask)
        wmask = (keys[None, :] <= pos[:, None]) & (keys[None, :] > pos[:, None] - c["window"])
        o_win = attend(qq, k, v, wmask[None, :, None, :])
        g = gates[:, t0:t1].double()
        out[:, t0:t1] = g[..., 0:1] * o_cmp + g[..., 1:2] * o_sel + g[..., 2:3] * o_win
    return out


@pytest.mark.parametrize("c", gpu_cases.NSA_CASES, ids=[c["id"] for c in gpu_cases.NSA_CASES])
def test_gpu_nsa(c):
    q, k, v, kc, vc, gates = nsa_inputs(c)
    o, idx = gpu.nsa(q, k, v, kc, vc, gates, cmp_block=c["cmp_block"], cmp_stride=c["cmp_stride"],
                     sel_block=c["sel_block"], num_selected=c["num_selected"], window=c["window"],
                     return_indices=True, bundles=BUNDLES)
    torch.cuda.synchronize()
    assert o.shape == (c["b"], c["t"], c["hq"], c["dv"]) and o.dtype == q.dtype
    assert not torch.isnan(o).any()
    # Again with NaN in every key/value row that neither a selected block
    # nor a query's window takes (the selection depends on q and the
    # compressed keys alone, so it cannot change): the same output, bit for
    # bit.
    s, t = c["s"], c["t"]
    pos = torch.arange(t, device=q.device) + s - t
    keys = torch.arange(s, device=q.device)
    in_window = ((keys[None, :] <= pos[:, None])
                 & (keys[None, :] > pos[:, None] - c["window"])).any(0)        # [S]
    unused = unselected_rows(idx, s, c["sel_block"], True, t) & ~in_window[None, :, None]
    print(f"{c['id']}: NaN in {int(unused.sum())} of {unused.numel()} (batch, key, KV head) rows")
    if unused.any():
        nan = float("nan")
        o2, idx2 = gpu.nsa(q, k.masked_fill(unused[..., None], nan),
                           v.masked_fill(unused[..., None], nan), kc, vc, gates,
                           cmp_block=c["cmp_block"], cmp_stride=c["cmp_stride"],
                           sel_block=c["sel_block"], num_selected=c["num_selected"],
                           window=c["window"], return_indices=True, bundles=BUNDLES)
        torch.cuda.synchronize()
        assert torch.equal(idx2, idx), "the selection changed"
        assert torch.equal(o2, o), \
            f"NaN in {int(unused.sum())} unselected key rows changed the output"
    # The selection: every row names min(N, candidates) distinct candidate
    # blocks, then -1; the forced blocks among them; and no block left out
    # scores higher (float64 scores) than one taken, beyond 1e-4 relative.
    scores, cand, forced, _ = nsa_block_scores(q, kc, c)
    n = c["num_selected"]
    idx64 = idx.long()
    ncand = cand.sum(-1)                                                       # [T]
    want = torch.clamp(ncand, max=n)
    taken = idx64 >= 0
    assert torch.equal(taken.sum(-1), want[None, :, None].expand_as(taken[..., 0])), \
        "wrong number of selected blocks"
    assert torch.equal(taken, (torch.arange(n, device=idx.device)
                               < want[None, :, None, None]).expand_as(taken)), \
        "-1 padding must follow the selected blocks"
    nb = scores.shape[-1]
    onehot = torch.zeros(*idx.shape[:3], nb + 1, dtype=torch.int64, device=idx.device)
    onehot.scatter_add_(3, torch.where(taken, idx64, torch.full_like(idx64, nb)), torch.ones_like(idx64))
    picked = onehot[..., :nb]
    assert picked.max() <= 1, "a block selected twice"
    assert not (picked.bool() & ~cand[None, :, None, :]).any(), "a block past the row's position"
    nforced = forced.sum(-1)
    assert (~forced[None, :, None, :] | picked.bool() | (nforced > n)[None, :, None, None]).all(), \
        "a forced block (initial or local) left out"
    free = cand[None, :, None, :] & ~forced[None, :, None, :]
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=idx.device)
    low_taken = torch.where(free & picked.bool(), scores, inf).amin(-1)
    high_left = torch.where(free & ~picked.bool(), scores, -inf).amax(-1)
    tol = 1e-4 * scores.amax(-1).clamp(min=1.0)
    worst = (high_left - low_taken - tol).max().item()
    print(f"\n{c['id']}: selection margin violation {max(worst, 0):.3e}")
    assert worst <= 0, f"a block left out outscores a selected one by {worst:.3e}"
    # The output, given the (checked) selection.
    ref = nsa_branch_reference(q, k, v, kc, vc, gates, idx, c, low=False)
    low = nsa_branch_reference(q, k, v, kc, vc, gates, idx, c, low=True)
    err = (o.double() - ref).abs().max().item()
    base = (low.to(torch.bfloat16).double() - ref).abs().max().item()
    print(f"{c['id']}: max|out-ref64| = {err:.3e}, max|bf16 math - ref64| = {base:.3e}")
    assert err <= 2 * base + 1e-3, f"max error {err:.3e} > 2 x {base:.3e} + 1e-3"


@pytest.mark.parametrize("c", gpu_cases.INDEXER_CASES, ids=[c["id"] for c in gpu_cases.INDEXER_CASES])
def test_gpu_lightning_indexer(c):
    gen = torch.Generator(device="cuda").manual_seed(0)
    b, sq, sk, h, d, n = c["b"], c["sq"], c["sk"], c["heads"], c["d"], c["top_k"]
    q = torch.randn(b, sq, h, d, device="cuda", generator=gen).to(torch.bfloat16)
    k = torch.randn(b, sk, d, device="cuda", generator=gen).to(torch.bfloat16)
    w = torch.randn(b, sq, h, device="cuda", generator=gen) / h
    # A tie: key 3 duplicated at key 7 (equal scores: 3 must come first,
    # which the exact comparison below checks).
    k[:, 7] = k[:, 3]
    idx, scores = gpu.lightning_indexer(q, k, w, n, causal=c["causal"], return_scores=True,
                                        bundles=BUNDLES)
    torch.cuda.synchronize()
    ref = torch.einsum("bthd,bsd->bths", q.double(), k.double()).relu()
    ref = torch.einsum("bths,bth->bts", ref, w.double())
    pos = torch.arange(sq, device="cuda") + sk - sq
    admitted = (torch.arange(sk, device="cuda")[None, :] <= pos[:, None]) if c["causal"] \
        else torch.ones(sq, sk, dtype=torch.bool, device="cuda")
    ref = ref.masked_fill(~admitted[None], float("-inf"))
    assert torch.equal(torch.isinf(scores), torch.isinf(ref)), "-inf pattern of the scores differs"
    fin = torch.isfinite(ref)
    err = ((scores.double() - ref).abs()[fin] / (1 + ref.abs()[fin])).max().item()
    print(f"\n{c['id']}: max rel|scores-ref64| = {err:.3e}")
    assert err < 1e-4
    # The selection is exactly the top-k of the kernel's own scores, ties to
    # the lower key, -1 past the admitted keys.
    order = torch.sort(-scores.double(), dim=-1, stable=True).indices[..., :n]
    expect = torch.where(torch.gather(scores, -1, order) > float("-inf"), order,
                         torch.full_like(order, -1)).to(torch.int32)
    if n > sk:
        expect = torch.cat([expect, torch.full((b, sq, n - sk), -1, dtype=torch.int32,
                                               device="cuda")], -1)
    assert torch.equal(idx, expect), "the indices are not the top-k of the scores"


def test_gpu_paged_batch_over_grid_limit():
    """More sequences than a grid's z size (65535; NSA's per-token sequences
    at T·Hkv > 65535): the host runs the batch in slices."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    b, hq, d, page = 70000, 16, 128, 64
    q = torch.randn(b, hq, d, device="cuda", generator=gen).to(torch.bfloat16)
    cache = torch.randn(b, page, 1, d, device="cuda", generator=gen).to(torch.bfloat16)
    table = torch.randperm(b, device="cuda", generator=gen).to(torch.int32).view(b, 1)
    lens = torch.randint(0, page + 1, (b,), device="cuda", generator=gen).to(torch.int32)
    o, lse = gpu.paged_attention(q, cache, cache, table, lens, return_lse=True, bundles=BUNDLES)
    torch.cuda.synchronize()
    kk = cache[table[:, 0].long(), :, 0].double()                      # [B, P, D]
    s = torch.einsum("bhd,bpd->bhp", q.double(), kk) / math.sqrt(d)
    s = s.masked_fill(torch.arange(page, device="cuda")[None, None, :] >= lens[:, None, None].long(),
                      float("-inf"))
    p = torch.softmax(s, -1).nan_to_num(0.0)
    ref = torch.einsum("bhp,bpd->bhd", p, kk)
    low = torch.einsum("bhp,bpd->bhd", p.to(torch.bfloat16).double(), kk).to(torch.bfloat16)
    err = (o.double() - ref).abs().max().item()
    base = (low.double() - ref).abs().max().item()
    print(f"\npaged B={b}: max|out-ref64| = {err:.3e}, max|bf16 math - ref64| = {base:.3e}")
    assert err <= 2 * base + 1e-3
    empty = lens == 0
    assert (o[empty] == 0).all() and torch.isinf(lse[empty]).all()
    fin = ~empty
    ref_lse = torch.logsumexp(s[fin], -1)
    assert (lse[fin].double() - ref_lse).abs().max().item() < 1e-3
