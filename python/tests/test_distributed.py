# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attn.distributed.context_parallel_attention (ring attention) on the CPU:
2 and 4 gloo ranks (torch.multiprocessing.spawn), the torch block kernel,
float64 inputs, each rank's output, LSE and gradients (dq, dk, dv, dsinks)
reassembled from the zigzag shards and compared with attn.reference's
single-process float64 attention and gradients (max error <= 1e-10 of the
largest value): non-causal, causal zigzag, GQA, bshd, sinks, softcap, a
window that maps onto the chunks, chunks of odd length, a cross-attention
split (Sq != Sk, non-causal). Also: the schedule posts step s + 1's transfer
before step s's block calls, the merge of rows without keys, the torch block
kernel against the reference, and the errors for inputs the ring cannot
take. Skips where torch or torch.distributed's gloo backend is missing.
"""

import datetime
import math
import os
import socket
import sys

import pytest

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
except ImportError:
    pytest.skip("PyTorch is not installed here: the context-parallel tests need torch "
                "(Debian's python3-torch)", allow_module_level=True)
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("this torch has no torch.distributed with the gloo backend",
                allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np  # noqa: E402
from attn import distributed as cp  # noqa: E402
from attn.reference import attention_grad_reference, attention_reference  # noqa: E402
from seeds import stable_seed  # noqa: E402


def case(id, b=2, hq=4, hkv=4, chunk=8, kv_chunk=None, d=16, dv=None, causal=False,
         window=None, softcap=None, scale=None, sinks=False, layout="bhsd"):
    """`chunk`: rows per zigzag chunk (the sequence is 2N chunks); window
    extents in chunks."""
    return dict(id=id, b=b, hq=hq, hkv=hkv, chunk=chunk, kv_chunk=kv_chunk or chunk, d=d,
                dv=dv or d, causal=causal, window=window, softcap=softcap, scale=scale,
                sinks=sinks, layout=layout)


CASES = [
    case("noncausal"),
    case("causal", causal=True),
    case("gqa_causal", hq=6, hkv=2, causal=True, dv=8),
    case("mqa_noncausal_bshd", hq=4, hkv=1, layout="bshd"),
    case("causal_bshd", causal=True, layout="bshd"),
    case("sinks_gqa_causal", hq=4, hkv=2, causal=True, sinks=True),
    case("sinks_noncausal_bshd", sinks=True, layout="bshd", b=1),
    case("softcap_causal_scale", causal=True, softcap=2.0, scale=0.7),
    case("odd_chunks_causal", chunk=13, causal=True, hq=2, hkv=1),
    case("window_chunks", window=(2, 0), hq=2, hkv=2, b=1),
    case("window_left_right", window=(1, 1), hq=2, hkv=1, b=1, sinks=True),
    case("cross_noncausal", chunk=6, kv_chunk=5, b=1),
]
WORLDS = [2, 4]
TOL = 1e-10


def _full_inputs(c, n):
    """The whole-sequence float64 inputs of case c on n ranks (the same in
    every process)."""
    g = torch.Generator().manual_seed(stable_seed((c["id"], n)))
    sq, sk = 2 * n * c["chunk"], 2 * n * c["kv_chunk"]

    def shape(h, s, d):
        return (c["b"], s, h, d) if c["layout"] == "bshd" else (c["b"], h, s, d)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    q, k, v = r(shape(c["hq"], sq, c["d"])), r(shape(c["hkv"], sk, c["d"])), \
        r(shape(c["hkv"], sk, c["dv"]))
    do = r(shape(c["hq"], sq, c["dv"]))
    sinks = r(c["hq"]) if c["sinks"] else None
    return q, k, v, do, sinks


def _window(c):
    return None if c["window"] is None else tuple(x * c["chunk"] for x in c["window"])


def _local(x, c, rank, n):
    if c["causal"] or c["window"] is not None:
        return cp.zigzag_shard(x, rank, n, layout=c["layout"])
    # Without a mask any equal split works: contiguous blocks here.
    dim = 2 if c["layout"] == "bhsd" else 1
    return x.chunk(n, dim)[rank].contiguous()


def _whole(parts, c):
    if c["causal"] or c["window"] is not None:
        return cp.zigzag_unshard(parts, layout=c["layout"])
    return torch.cat(parts, 2 if c["layout"] == "bhsd" else 1)


def _run_case(c, rank, n):
    q, k, v, do, sinks = _full_inputs(c, n)
    leaves = [_local(t, c, rank, n).requires_grad_() for t in (q, k, v)]
    s = sinks.clone().requires_grad_() if sinks is not None else None
    out, lse = cp.context_parallel_attention(
        *leaves, causal=c["causal"], window=_window(c), softcap=c["softcap"], scale=c["scale"],
        sinks=s, layout=c["layout"], return_lse=True, blocks=cp.TorchBlocks())
    out.backward(_local(do, c, rank, n))
    got = dict(out=out.detach(), lse=lse, dq=leaves[0].grad, dk=leaves[1].grad,
               dv=leaves[2].grad)
    if s is not None:
        got["dsinks"] = s.grad
    return got


def _errors(fn):
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None


def _bad_inputs(rank, n):
    """The ValueError messages of inputs the ring cannot take (raised on
    every rank before any transfer)."""
    odd = torch.zeros(1, 2, 2 * 4 + 1, 8, dtype=torch.float64)  # an odd number of local rows
    t = torch.zeros(1, 2, 2 * 4, 8, dtype=torch.float64)
    return {
        "odd_local": _errors(lambda: cp.context_parallel_attention(odd, odd, odd, causal=True)),
        "window": _errors(lambda: cp.context_parallel_attention(t, t, t, window=(3, 0))),
        "causal_and_window": _errors(
            lambda: cp.context_parallel_attention(t, t, t, causal=True, window=(4, 0))),
        "causal_cross": _errors(lambda: cp.context_parallel_attention(
            t, t.narrow(2, 0, 6), t.narrow(2, 0, 6), causal=True)),
        "layout": _errors(lambda: cp.context_parallel_attention(t, t, t, layout="sbhd")),
        "softcap": _errors(lambda: cp.context_parallel_attention(t, t, t, softcap=-1.0)),
    }


class _Failing(cp.TorchBlocks):
    """The torch block kernel, failing on its first call (on every rank),
    with step 1's transfer in flight."""

    def forward(self, *args, **kwargs):
        raise RuntimeError("planted failure")


def _after_failure(rank, n, want):
    """The error of a ring whose block kernel raised, and whether the next
    ring's results are still exactly those of case 1 (no stale transfer)."""
    c = CASES[1]
    q, k, v, _, _ = _full_inputs(c, n)
    try:
        # Other keys and values than the next ring's: a stale message would show.
        cp.context_parallel_attention(*(_local(t, c, rank, n) for t in (q, 2 * k, 3 * v)),
                                      causal=True, blocks=_Failing())
        error = None
    except RuntimeError as e:
        error = str(e)
    got = _run_case(c, rank, n)
    return error, all(torch.equal(got[name], want[name]) for name in want)


def _worker(rank, n, init, out_dir):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=n,
                            timeout=datetime.timedelta(seconds=120))
    try:
        torch.set_num_threads(1)
        results = {c["id"]: _run_case(c, rank, n) for c in CASES}
        events = []
        previous = cp.set_ring_trace(lambda e, s: events.append((e, s)))
        try:
            _run_case(CASES[1], rank, n)
        finally:
            cp.set_ring_trace(previous)
        results["events"] = events
        results["bad"] = _bad_inputs(rank, n)
        results["after_failure"] = _after_failure(rank, n, results[CASES[1]["id"]])
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=WORLDS, ids=[f"{n}ranks" for n in WORLDS])
def ranks(request, tmp_path_factory):
    """Every rank's results of one run of all cases on N gloo ranks."""
    n = request.param
    out_dir = str(tmp_path_factory.mktemp(f"cp{n}"))
    mp.spawn(_worker, args=(n, f"tcp://127.0.0.1:{_free_port()}", out_dir), nprocs=n,
             join=True)
    return n, [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(n)]


def _check(name, got, want):
    want = torch.as_tensor(np.asarray(want))
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert not torch.isnan(got).any(), f"NaN in {name}"
    finite = torch.isfinite(want)
    assert torch.equal(torch.isfinite(got), finite), f"{name}: infinities differ"
    err = (got[finite] - want[finite]).abs().max().item()
    bound = TOL * max(1.0, want[finite].abs().max().item())
    assert err <= bound, f"{name}: max error {err:.3g} > {bound:.3g}"


@pytest.mark.parametrize("c", CASES, ids=[c["id"] for c in CASES])
def test_ring_matches_reference(ranks, c):
    n, results = ranks
    q, k, v, do, sinks = _full_inputs(c, n)
    window = _window(c)
    mask = "causal" if c["causal"] else "window" if window else "none"
    left, right = window or (0, 0)
    kw = dict(layout=c["layout"], mask=mask, left=left, right=right, scale=c["scale"],
              softcap=c["softcap"], sinks=None if sinks is None else sinks.numpy())
    out, lse = attention_reference(q.numpy(), k.numpy(), v.numpy(), **kw)
    dq, dk, dv, dsinks = attention_grad_reference(q.numpy(), k.numpy(), v.numpy(), do.numpy(),
                                                  **kw)
    got = [r[c["id"]] for r in results]
    _check("out", _whole([g["out"] for g in got], c), out)
    # The LSE [B, H, S] has the sequence in dim 2 whatever the layout.
    lse_parts = [g["lse"] for g in got]
    _check("lse", _whole(lse_parts, dict(c, layout="bhsd")).unsqueeze(-1), lse[..., None])
    _check("dq", _whole([g["dq"] for g in got], c), dq)
    _check("dk", _whole([g["dk"] for g in got], c), dk)
    _check("dv", _whole([g["dv"] for g in got], c), dv)
    if sinks is not None:
        for g in got:
            _check("dsinks", g["dsinks"], dsinks)


def test_transfer_posted_before_compute(ranks):
    """Step s + 1's key/value transfer is posted before step s's block calls
    and waited for after them; in the backward the dK/dV accumulators that
    leave after step s are waited for after step s + 1's block calls, and
    every rank gets its own back after N steps."""
    n, results = ranks
    for rank, r in enumerate(results):
        events = r["events"]
        half = [i for i, e in enumerate(events) if e == ("compute", 0)][1]  # backward's step 0
        half -= 1 if n > 1 else 0  # with its ("post", 1)
        for part, name in ((events[:half], "forward"), (events[half:], "backward")):
            at = {e: i for i, e in enumerate(part)}
            for s in range(n - 1):
                assert at[("post", s + 1)] < at[("compute", s)], (name, rank, part)
                assert at[("computed", s)] < at[("wait", s + 1)], (name, rank, part)
            assert ("post", n) not in at
        at = {e: i for i, e in enumerate(events[half:])}
        for s in range(n):
            assert at[("computed", s)] < at[("post_grad", s)]
            assert at[("post_grad", s)] < at[("wait_grad", s)]
            if s + 1 < n:
                assert at[("compute", s + 1)] < at[("wait_grad", s)]


def test_bad_inputs_raise(ranks):
    n, results = ranks
    for r in results:
        bad = r["bad"]
        assert "not two equal chunks" in bad["odd_local"]
        assert f"divisible by {2 * n}" in bad["odd_local"]
        assert "does not map onto the ring's blocks" in bad["window"]
        assert "multiples of the chunk length" in bad["window"]
        assert "either causal=True or window" in bad["causal_and_window"]
        assert "as many query rows as keys" in bad["causal_cross"]
        assert "unknown layout 'sbhd'" in bad["layout"]
        assert "softcap must be a positive finite number" in bad["softcap"]


def test_block_kernel_failure_leaves_no_transfer(ranks):
    """A block kernel that raises (on every rank) with a transfer in flight:
    the error reaches the caller, and the next ring gives the same results
    as before (the transfer was completed, not left to meet its receives)."""
    _, results = ranks
    for r in results:
        error, same = r["after_failure"]
        assert error == "planted failure"
        assert same


def test_zigzag_shard():
    n = 3
    x = torch.arange(2 * n * 4, dtype=torch.float64).reshape(1, 1, -1, 1)
    parts = [cp.zigzag_shard(x, r, n) for r in range(n)]
    assert parts[0].flatten().tolist() == [0, 1, 2, 3, 20, 21, 22, 23]
    assert parts[2].flatten().tolist() == [8, 9, 10, 11, 12, 13, 14, 15]
    assert torch.equal(cp.zigzag_unshard(parts), x)
    y = x.reshape(1, -1, 1, 1)
    assert torch.equal(cp.zigzag_unshard([cp.zigzag_shard(y, r, n, layout="bshd")
                                          for r in range(n)], layout="bshd"), y)
    with pytest.raises(ValueError, match=r"sequence length 26 is not divisible by 2N = 6"):
        cp.zigzag_shard(torch.zeros(1, 1, 26, 1), 0, n)
    with pytest.raises(ValueError, match="unknown layout"):
        cp.zigzag_shard(x, 0, n, layout="sbhd")


def test_merge_rows_without_keys():
    """Merging partials of rows that one or both blocks do not admit: the
    other block's result, or 0 and -inf, never NaN."""
    inf = math.inf
    o_a = torch.tensor([[[[1.0, 2.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0]]]], dtype=torch.float64)
    l_a = torch.tensor([[[0.5, -inf, -inf, 0.0]]], dtype=torch.float64)
    o_b = torch.tensor([[[[0.0, 0.0], [5.0, 6.0], [0.0, 0.0], [1.0, 0.0]]]], dtype=torch.float64)
    l_b = torch.tensor([[[-inf, 1.0, -inf, 0.0]]], dtype=torch.float64)
    out, lse = cp.merge_partials(o_a, l_a, o_b, l_b)
    assert not torch.isnan(out).any() and not torch.isnan(lse).any()
    assert out[0, 0, 0].tolist() == [1.0, 2.0] and lse[0, 0, 0] == 0.5
    assert out[0, 0, 1].tolist() == [5.0, 6.0] and lse[0, 0, 1] == 1.0
    assert out[0, 0, 2].tolist() == [0.0, 0.0] and lse[0, 0, 2] == -inf
    assert out[0, 0, 3].tolist() == [2.0, 2.0] and abs(lse[0, 0, 3] - math.log(2)) < 1e-15
    # A sink: a term without values.
    out, lse = cp.merge_partials(o_a, l_a, None, torch.zeros_like(l_a))
    assert abs(out[0, 0, 0, 0] - 1 / (1 + math.exp(-0.5))) < 1e-15
    assert out[0, 0, 1].tolist() == [0.0, 0.0] and lse[0, 0, 1] == 0.0


@pytest.mark.parametrize("mask,window,sq,sk", [("none", None, 7, 11), ("causal", None, 9, 5),
                                               ("window", (3, 1), 6, 10)])
def test_torch_blocks_match_reference(mask, window, sq, sk):
    """The torch block kernel alone: rows without keys (causal, Sq > Sk)
    give 0 and -inf; its backward with the forward's out and LSE gives the
    reference gradients."""
    g = torch.Generator().manual_seed(stable_seed((mask, sq, sk)))
    q = torch.randn(2, 4, sq, 8, generator=g, dtype=torch.float64)
    k = torch.randn(2, 2, sk, 8, generator=g, dtype=torch.float64)
    v = torch.randn(2, 2, sk, 6, generator=g, dtype=torch.float64)
    do = torch.randn(2, 4, sq, 6, generator=g, dtype=torch.float64)
    kw = dict(causal=mask == "causal", window=window, softcap=3.0, scale=0.4, layout="bhsd")
    blocks = cp.TorchBlocks()
    out, lse = blocks.forward(q, k, v, **kw)
    left, right = window or (0, 0)
    ref = dict(mask=mask, left=left, right=right, scale=0.4, softcap=3.0)
    want_out, want_lse = attention_reference(q.numpy(), k.numpy(), v.numpy(), **ref)
    _check("out", out, want_out)
    _check("lse", lse, want_lse)
    grads = blocks.backward(do, q, k, v, out, lse, **kw)
    want = attention_grad_reference(q.numpy(), k.numpy(), v.numpy(), do.numpy(), **ref)
    for name, got, w in zip(("dq", "dk", "dv"), grads, want):
        _check(name, got, w)
