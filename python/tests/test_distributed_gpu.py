# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attn.distributed.context_parallel_attention on a GPU: 2 gloo ranks, both
on cuda:0 (gloo's point-to-point ops go through host memory), the ring's
block calls on attn's kernels (GpuBlocks: attn.gpu.attention with its LSE
and attn.gpu.attention_backward, from $ATTN_BUNDLES: the gpu_cases.CP_CASES
variants of python -m attn.bundles --gpu-suite), bf16, each rank's output,
LSE and gradients reassembled from the zigzag shards and checked against
float64 by FlashAttention's rule: max|x - ref64| <= 2 * max|x_native -
ref64| + atol for the output, dq, dk, dv (and dsinks), where x_native is
PyTorch's autograd of the same attention in bf16. Also the ring with the
torch block kernel on CUDA float64 tensors against float64 (the staging of
CUDA tensors through gloo). Skips without a CUDA GPU.
"""

import datetime
import os
import socket
import sys

import pytest

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
except ImportError:
    pytest.skip("PyTorch is not installed here: the GPU suite runs on a GPU machine "
                "(.ci/gpu-suite, see README)", allow_module_level=True)
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU on this machine: the GPU suite runs on the device machine",
                allow_module_level=True)
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("this torch has no torch.distributed with the gloo backend",
                allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from attn import distributed as cp  # noqa: E402
import gpu_cases  # noqa: E402
from seeds import stable_seed  # noqa: E402
from test_gpu import TORCH_DTYPE, reference  # noqa: E402

BUNDLES = os.environ.get("ATTN_BUNDLES", "build/bundles")
RANKS = 2
RESULTS = []


def _inputs(c, dtype):
    """The whole-sequence inputs of case c on cuda:0 (the same in every
    process)."""
    g = torch.Generator(device="cuda").manual_seed(stable_seed(c["id"]))

    def shape(h, s, d):
        return (c["b"], s, h, d) if c["layout"] == "bshd" else (c["b"], h, s, d)

    def r(*s):
        return torch.randn(*s, generator=g, device="cuda", dtype=torch.float32).to(dtype)
    q = r(shape(c["hq"], c["sq"], c["d"]))
    k = r(shape(c["hkv"], c["sk"], c["d"]))
    v = r(shape(c["hkv"], c["sk"], c["dv"]))
    do = r(shape(c["hq"], c["sq"], c["dv"]))
    # Sinks in float32 as the GPU kernels take them; float64 with float64
    # inputs, whose dsinks is checked to 1e-10.
    sinks = r(c["hq"]).to(torch.float64 if dtype == torch.float64 else torch.float32) \
        if c["sinks"] else None
    return q, k, v, do, sinks


def _ring(c, rank, dtype, blocks):
    q, k, v, do, sinks = _inputs(c, dtype)
    shard = lambda t: cp.zigzag_shard(t, rank, RANKS, layout=c["layout"])  # noqa: E731
    leaves = [shard(t).requires_grad_() for t in (q, k, v)]
    s = sinks.clone().requires_grad_() if sinks is not None else None
    out, lse = cp.context_parallel_attention(
        *leaves, causal=c["causal"], window=c["window"], softcap=c["softcap"], scale=c["scale"],
        sinks=s, layout=c["layout"], return_lse=True, blocks=blocks)
    out.backward(shard(do))
    got = dict(out=out.detach(), lse=lse, dq=leaves[0].grad, dk=leaves[1].grad,
               dv=leaves[2].grad)
    if s is not None:
        got["dsinks"] = s.grad
    return {name: t.cpu() for name, t in got.items()}


# The torch block kernel on CUDA float64 tensors (no bundles needed).
TORCH_CASE = gpu_cases.case("cp_torch_blocks_f64", b=1, hq=4, hkv=2, sq=96, sk=96, d=32,
                            causal=True, sinks=True, layout="bshd")


def _worker(rank, init, out_dir):
    torch.cuda.set_device(0)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=RANKS,
                            timeout=datetime.timedelta(seconds=300))
    try:
        results = {}
        for c in gpu_cases.CP_CASES:
            try:
                results[c["id"]] = _ring(c, rank, torch.bfloat16, cp.GpuBlocks(BUNDLES))
            except (LookupError, ValueError) as e:
                # The same on both ranks (the kernel lookup precedes transfers).
                results[c["id"]] = f"{type(e).__name__}: {e}"
        results[TORCH_CASE["id"]] = _ring(TORCH_CASE, rank, torch.float64, cp.TorchBlocks())
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("cp_gpu"))
    mp.spawn(_worker, args=(f"tcp://127.0.0.1:{_free_port()}", out_dir), nprocs=RANKS,
             join=True)
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(RANKS)]


def _whole(results, c, name):
    parts = [r[c["id"]][name].cuda() for r in results]
    if name == "dsinks":
        assert all(torch.equal(p, parts[0]) for p in parts), "ranks' dsinks differ"
        return parts[0]
    layout = "bhsd" if name == "lse" else c["layout"]
    return cp.zigzag_unshard(parts, layout=layout)


def _attention(c, q, k, v, do, sinks, dtype):
    """The output, LSE and gradients of the whole attention, the math in
    dtype (test_gpu.reference, explicit)."""
    leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
    s = sinks.detach().to(dtype).requires_grad_() if sinks is not None else None
    out = reference(*leaves, c, None, s, dtype, explicit=True)
    out.backward(do.to(dtype))
    grads = [t.grad for t in leaves] + ([s.grad] if s is not None else [])
    return out.detach(), grads


def _lse64(c, q, k, sinks):
    q, k = q.double(), k.double()
    if c["layout"] == "bshd":
        q, k = q.transpose(1, 2), k.transpose(1, 2)
    k = k.repeat_interleave(c["hq"] // c["hkv"], 1)
    scale = c["scale"] if c["scale"] is not None else c["d"] ** -0.5
    s = (q @ k.transpose(-1, -2)) * scale
    if c["softcap"] is not None:
        s = c["softcap"] * torch.tanh(s / c["softcap"])
    if c["causal"]:
        s = s.masked_fill(torch.ones_like(s, dtype=torch.bool).triu(1), float("-inf"))
    if sinks is not None:
        sink = sinks.double()[None, :, None, None].expand(s.shape[0], -1, s.shape[2], 1)
        s = torch.cat([s, sink], -1)
    return torch.logsumexp(s, -1)


@pytest.mark.parametrize("c", gpu_cases.CP_CASES, ids=[c["id"] for c in gpu_cases.CP_CASES])
def test_ring_gpu_kernels(ranks, c):
    if isinstance(ranks[0][c["id"]], str):
        pytest.fail(f"the ring's block kernels failed: {ranks[0][c['id']]}")
    q, k, v, do, sinks = _inputs(c, torch.bfloat16)
    ref_out, ref = _attention(c, q, k, v, do, sinks, torch.float64)
    native_out, native = _attention(c, q, k, v, do, sinks, torch.bfloat16)
    names = ["out", "dq", "dk", "dv"] + (["dsinks"] if sinks is not None else [])
    for name, r, n in zip(names, [ref_out] + ref, [native_out] + native):
        g = _whole(ranks, c, name)
        assert g.shape == r.shape, f"{name}: shape {tuple(g.shape)} != {tuple(r.shape)}"
        assert not torch.isnan(g).any(), f"NaN in {name}"
        err = (g.double() - r).abs().max().item()
        native_err = (n.double() - r).abs().max().item()
        atol = 1e-5 * max(1.0, r.abs().max().item())
        RESULTS.append((c["id"], name, err, native_err))
        assert err <= 2 * native_err + atol, \
            f"{name}: max error {err:.3g} > 2 x native {native_err:.3g} + {atol:.1g}"
    lse = _whole(ranks, c, "lse").double()
    want = _lse64(c, q, k, sinks)
    err = (lse - want).abs().max().item()
    RESULTS.append((c["id"], "lse", err, float("nan")))
    assert err <= 1e-3 * max(1.0, want.abs().max().item()), f"lse: max error {err:.3g}"


def test_ring_cuda_tensors_over_gloo(ranks):
    """The ring with the torch block kernel on CUDA float64 tensors: the
    transfers stage them through host memory; the result is float64's."""
    c = TORCH_CASE
    q, k, v, do, sinks = _inputs(c, torch.float64)
    ref_out, ref = _attention(c, q, k, v, do, sinks, torch.float64)
    for name, r in zip(["out", "dq", "dk", "dv", "dsinks"], [ref_out] + ref):
        g = _whole(ranks, c, name)
        err = (g - r).abs().max().item()
        assert err <= 1e-10 * max(1.0, r.abs().max().item()), f"{name}: max error {err:.3g}"
    lse = _whole(ranks, c, "lse")
    assert (lse - _lse64(c, q, k, sinks)).abs().max().item() <= 1e-10


def teardown_module():
    if RESULTS:
        print("\ncase what max_err native_err")
        for r in RESULTS:
            print(f"{r[0]} {r[1]} {r[2]:.3g} {r[3]:.3g}")
