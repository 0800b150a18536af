# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""GPU correctness of the attention backward (attn.gpu.attention_backward,
and attn.gpu.attention / attn.ops.attention under autograd), against float64
gradients, by FlashAttention's rule: for each of dq, dk, dv (and dsinks),
max|grad - ref64| <= 2 * max|grad_native - ref64| + atol, where grad_native
is PyTorch's autograd of the same attention in the input dtype. No NaN, and
rows with no admissible key and no sink get exactly zero dq. Skips without a
CUDA GPU.
"""

import os
import sys

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
from test_gpu import TORCH_DTYPE, reference  # noqa: E402

BUNDLES = os.environ.get("ATTN_BUNDLES", "build/bundles")
RESULTS = []


def _inputs(c, seed):
    torch.manual_seed(seed)
    dt = TORCH_DTYPE[c["dtype"]]

    def shape(h, s, d):
        return (c["b"], s, h, d) if c["layout"] == "bshd" else (c["b"], h, s, d)
    q = torch.randn(shape(c["hq"], c["sq"], c["d"]), device="cuda", dtype=dt)
    k = torch.randn(shape(c["hkv"], c["sk"], c["d"]), device="cuda", dtype=dt)
    v = torch.randn(shape(c["hkv"], c["sk"], c["dv"]), device="cuda", dtype=dt)
    do = torch.randn(shape(c["hq"], c["sq"], c["dv"]), device="cuda", dtype=dt)
    bias = sinks = None
    if c["bias"] is not None:
        full = (c["b"], c["hq"], c["sq"], c["sk"])
        bias = torch.randn(tuple(1 if b else f for b, f in zip(c["bias"], full)),
                           device="cuda", dtype=dt)
    if c["sinks"]:
        sinks = torch.randn(c["hq"], device="cuda", dtype=torch.float32)
    return q, k, v, do, bias, sinks


def _reference_grads(c, q, k, v, do, bias, sinks, dtype):
    leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
    s = sinks.detach().to(dtype).requires_grad_() if sinks is not None else None
    # reference() takes the inputs in the case's layout and casts them.
    out = reference(*leaves, c, bias, s, dtype, explicit=True)
    out.backward(do.to(dtype))
    grads = [t.grad for t in leaves] + ([s.grad] if s is not None else [])
    return out.detach(), grads


def _kwargs(c, bias, sinks):
    return dict(causal=c["causal"], window=c["window"], softcap=c["softcap"], scale=c["scale"],
                bias=bias, sinks=sinks, layout=c["layout"])


@pytest.mark.parametrize("c", gpu_cases.GRAD_CASES, ids=[c["id"] for c in gpu_cases.GRAD_CASES])
def test_attention_backward(c):
    if c["kernel"] == "wgmma" and torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the wgmma backward is an sm_90a kernel")
    q, k, v, do, bias, sinks = _inputs(c, stable_seed(c["id"], 31))
    out, lse = gpu.attention(q, k, v, return_lse=True, bundles=BUNDLES, **_kwargs(c, bias, sinks))
    grads = gpu.attention_backward(do, q, k, v, out, lse, bundles=BUNDLES, kernel=c["kernel"],
                                   deterministic=c.get("deterministic", True),
                                   dq_reduce=c.get("dq_reduce"),
                                   **_kwargs(c, bias, sinks))
    _, ref = _reference_grads(c, q, k, v, do, bias, sinks, torch.float64)
    _, native = _reference_grads(c, q, k, v, do, bias, sinks, TORCH_DTYPE[c["dtype"]])
    names = ["dq", "dk", "dv"] + (["dsinks"] if sinks is not None else [])
    for name, g, r, n in zip(names, grads, ref, native):
        assert not torch.isnan(g).any(), f"NaN in {name}"
        err = (g.double() - r).abs().max().item()
        native_err = (n.double() - r).abs().max().item()
        atol = 1e-5 * max(1.0, r.abs().max().item())
        RESULTS.append((c["id"], name, err, native_err))
        assert err <= 2 * native_err + atol, \
            f"{name}: max error {err:.3g} > 2 x native {native_err:.3g} + {atol:.1g}"
    if c["causal"] and c["sq"] > c["sk"] and not c["sinks"]:
        empty = c["sq"] - c["sk"]
        rows = grads[0][:, :, :empty] if c["layout"] == "bhsd" else grads[0][:, :empty]
        assert torch.all(rows == 0)


def _assert_same_grads(got, want, deterministic):
    """Two runs' (dq, dk, dv[, dsinks]) of one backward set: the
    deterministic set's bit for bit; the fused dQ's dK, dV and dsinks (no
    reduction across blocks) bit for bit and its dQ (f32 adds in whatever
    order the blocks finish) within one rounding of the element type of the
    largest gradient."""
    for i, (g, w) in enumerate(zip(got, want)):
        if deterministic or i != 0:
            assert torch.equal(g, w)
        else:
            ulp = torch.finfo(w.dtype).eps * w.float().abs().max()
            assert (g.float() - w.float()).abs().max() <= ulp


@pytest.mark.parametrize("deterministic", [True, False], ids=["deterministic", "default"])
def test_fast_path_matches_python_path(deterministic):
    """attention_backward's native entry (the second call of a key) gives
    the Python path's gradients: bit for bit for the deterministic set; for
    the fused one dK, dV and dsinks bit for bit and dQ within one rounding
    of its largest value (its f32 adds run in the order blocks finish). A
    case with GQA, a bias, sinks and softcap."""
    c = next(c for c in gpu_cases.GRAD_CASES if c["id"] == "grad_sinks_causal_d128_bf16")
    q, k, v, do, bias, sinks = _inputs(c, 11)
    out, lse = gpu.attention(q, k, v, return_lse=True, bundles=BUNDLES, **_kwargs(c, bias, sinks))
    if gpu._fast_module is None or not gpu.fastpath_status().startswith("on"):
        pytest.skip(f"no fast path: {gpu.fastpath_status()}")

    def call():
        return gpu.attention_backward(do, q, k, v, out, lse, bundles=BUNDLES,
                                      deterministic=deterministic, **_kwargs(c, bias, sinks))
    previous = gpu.set_fastpath(False)
    try:
        want = call()
    finally:
        gpu.set_fastpath(previous)
    call()  # the Python path again, which registers the plan
    hits = gpu._fast_module.stats()["hits"]
    got = call()
    assert gpu._fast_module.stats()["hits"] == hits + 1
    assert len(got) == len(want) == 4
    _assert_same_grads(got, want, deterministic)


@pytest.mark.parametrize("deterministic", [True, False], ids=["deterministic", "default"])
@pytest.mark.parametrize("c", [gpu_cases.GRAD_CASES[1], gpu_cases.GRAD_CASES[4]],
                         ids=["gqa_causal", "sinks_window"])
def test_autograd_matches_backward(c, deterministic):
    """attention under autograd gives attention_backward's gradients through
    attn.gpu and through the custom op attn::attention, following
    torch.use_deterministic_algorithms as attention_backward's default does:
    with it, the deterministic kernels' gradients bit for bit; without (the
    default), the fused dQ's, whose dK and dV (no reduction across blocks)
    are bit for bit too and whose dQ (f32 adds in whatever order the blocks
    finish) within one rounding of the element type of the largest
    gradient."""
    import attn.ops

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        q, k, v, do, bias, sinks = _inputs(c, 7)
        out, lse = gpu.attention(q, k, v, return_lse=True, bundles=BUNDLES,
                                 **_kwargs(c, bias, sinks))
        want = gpu.attention_backward(do, q, k, v, out, lse, bundles=BUNDLES,
                                      deterministic=deterministic, **_kwargs(c, bias, sinks))
        for fn in (lambda *a, **kw: gpu.attention(*a, bundles=BUNDLES, **kw),
                   attn.ops.attention):
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]
            s = sinks.clone().requires_grad_() if sinks is not None else None
            o = fn(*leaves, **_kwargs(c, bias, s))
            assert torch.equal(o.detach(), out)
            o.backward(do)
            got = [t.grad for t in leaves] + ([s.grad] if s is not None else [])
            _assert_same_grads(got, want, deterministic)
    finally:
        torch.use_deterministic_algorithms(before)


def test_training_loop_matches_sdpa():
    """A small attention layer trained for a few steps with attn's kernels
    follows the same loss curve as with SDPA (bf16, causal, 2 heads of
    head dim 64: a variant of the suite's bundles)."""
    def run(use_attn):
        torch.manual_seed(0)
        layer = torch.nn.Linear(128, 3 * 128, device="cuda", dtype=torch.bfloat16)
        opt = torch.optim.SGD(layer.parameters(), lr=0.1)
        x = torch.randn(2, 96, 128, device="cuda", dtype=torch.bfloat16)
        target = torch.randn(2, 96, 128, device="cuda", dtype=torch.bfloat16)
        losses = []
        for _ in range(5):
            qkv = layer(x).view(2, 96, 3, 2, 64)
            q, k, v = (qkv[:, :, i].transpose(1, 2).contiguous() for i in range(3))
            if use_attn:
                o = gpu.attention(q, k, v, causal=True, bundles=BUNDLES)
            else:
                o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            loss = (o.transpose(1, 2).reshape(2, 96, 128).float() - target.float()).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses
    ours, theirs = run(True), run(False)
    assert ours[-1] < ours[0]
    for a, b in zip(ours, theirs):
        assert abs(a - b) <= 2e-2 * abs(b), (ours, theirs)


def teardown_module():
    if RESULTS:
        print("\ncase grad max_err native_err")
        for r in RESULTS:
            print(f"{r[0]} {r[1]} {r[2]:.3g} {r[3]:.3g}")
