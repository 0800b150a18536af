# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The torch-facing runtime on a GPU: CUDA-graph capture of every entry
point, the torch.library custom ops (fake implementations, torch.compile
with fullgraph), calls on a second GPU, compilation on first use
(attn.jit), and the native fast path (attn/_fastpath.c) against the Python
path. Bundles come from $ATTN_BUNDLES (the GPU suite's, python -m
attn.bundles --gpu-suite); the JIT tests need attn-compile ($ATTN_COMPILE,
e.g. the standalone build of .ci/standalone-compiler). Skips without a GPU.
"""

import os
import subprocess
import sys
import time

import pytest

try:
    import torch
except ImportError:
    pytest.skip("PyTorch is not installed here: the runtime tests run on a GPU machine "
                "(.ci/gpu-runtime)", allow_module_level=True)
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU on this machine: runtime tests run on the device machine",
                allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
import attn.ops  # noqa: E402
from attn import gpu, jit  # noqa: E402
import gpu_cases  # noqa: E402
import test_gpu  # noqa: E402  (the suite's input makers)

BUNDLES = os.environ.get("ATTN_BUNDLES", "build/bundles")


def _case(cases, cid):
    return next(c for c in cases if c["id"] == cid)


def _fresh(x):
    """New data for input `x` with the same layout and value range: float
    tensors rolled along their last dim, index tensors unchanged."""
    return torch.roll(x, 1, dims=-1) if x.is_floating_point() else x.clone()


def _same(a, b):
    """Bitwise equality, NaN equal to NaN."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def _check_graph(fn, inputs):
    """Captures fn(*static inputs) in a CUDA graph, replays it with new data
    copied into the inputs, and compares with fn called eagerly on that data:
    the same kernels on the same data give the same bits."""
    static = [x.clone() for x in inputs]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: kernels loaded, lookups memoized
        for _ in range(2):
            fn(*static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = fn(*static)
    outs = outs if isinstance(outs, tuple) else (outs,)
    for _ in range(2):
        new = [_fresh(x) for x in static]
        for s, n in zip(static, new):
            s.copy_(n)
        graph.replay()
        expect = fn(*new)
        expect = expect if isinstance(expect, tuple) else (expect,)
        torch.cuda.synchronize()
        for o, e in zip(outs, expect):
            assert _same(o, e), "graph replay differs from the eager call on the same data"


def _dense_inputs(c):
    dt = test_gpu.TORCH_DTYPE[c["dtype"]]
    shape = (lambda h, s, d: (c["b"], s, h, d)) if c["layout"] == "bshd" else \
        (lambda h, s, d: (c["b"], h, s, d))
    return [torch.randn(shape(c["hq"], c["sq"], c["d"]), device="cuda", dtype=dt),
            torch.randn(shape(c["hkv"], c["sk"], c["d"]), device="cuda", dtype=dt),
            torch.randn(shape(c["hkv"], c["sk"], c["dv"]), device="cuda", dtype=dt)]


@pytest.mark.parametrize("cid", ["gqa4_causal_d64", "mha_bf16", "mla_d192_dv128",
                                 "window_left_right_bshd_f16"])
def test_graph_dense(cid):
    """Dense prefill on the wgmma kernel (TMA descriptors in the launch's
    parameters) and on mma.sync (d192/dv128, f16 window bshd)."""
    c = _case(gpu_cases.CASES, cid)

    def fn(q, k, v):
        return gpu.attention(q, k, v, causal=c["causal"], window=c["window"], scale=c["scale"],
                             layout=c["layout"], return_lse=c["lse"], bundles=BUNDLES)
    _check_graph(fn, _dense_inputs(c))


@pytest.mark.parametrize("cid", ["paged_mixed_lengths_p16", "paged_sinks_lse_empty",
                                 "mla_b4_h32_mtp2"])
def test_graph_paged(cid):
    """Paged decode (split + combine kernels) and MLA's latent cache."""
    c = _case(gpu_cases.PAGED_CASES, cid)
    q, kc, vc, table, lens, _, _, sinks = test_gpu.paged_inputs(c)
    latent = c["v_prefix"]

    def fn(q, kc, vc, table, lens, *rest):
        return gpu.paged_attention(q, kc, kc[..., :c["dv"]] if latent else vc, table, lens,
                                   causal=c["causal"], window=c["window"], softcap=c["softcap"],
                                   scale=c["scale"], sinks=rest[0] if rest else None,
                                   cache_layout=c["layout"], return_lse=c["lse"],
                                   bundles=BUNDLES)
    _check_graph(fn, [q, kc, vc, table, lens] + ([sinks] if sinks is not None else []))


@pytest.mark.parametrize("cid", ["gdn_t65_d100_init", "gdn_decode_t1_init", "kda_t65_d64_f16_init"])
def test_graph_gated_delta(cid):
    """The chunked kernels (with their workspaces) and the recurrent one."""
    c = _case(gpu_cases.GATED_CASES, cid)
    q, k, v, g, beta, s0 = test_gpu.gated_inputs(c)

    def fn(q, k, v, g, beta, s0):
        return gpu.gated_delta_rule(q, k, v, g, beta, initial_state=s0, qk_l2norm=c["l2norm"],
                                    scale=c["scale"], bundles=BUNDLES)
    _check_graph(fn, [q, k, v, g, beta, s0])


def test_nsa_fake_shapes():
    """The NSA custom op's fake kernel gives the shapes gpu.nsa returns, Dv
    columns where D != Dv (what torch.compile traces with)."""
    for cid in ("nsa_t63_b3", "nsa_d192_dv128_t700_s1200_b2"):
        c = _case(gpu_cases.NSA_CASES, cid)
        q, k, v, kc, vc, gates = test_gpu.nsa_inputs(c)
        kw = dict(cmp_block=c["cmp_block"], cmp_stride=c["cmp_stride"],
                  sel_block=c["sel_block"], num_selected=c["num_selected"], window=c["window"])
        meta = [x.to("meta") for x in (q, k, v, kc, vc, gates)]
        fake_out, fake_idx = attn.ops._nsa_fake(*meta, kw["cmp_block"], kw["cmp_stride"],
                                                kw["sel_block"], kw["num_selected"],
                                                kw["window"], 1, 2, None, 64)
        out, idx = gpu.nsa(q, k, v, kc, vc, gates, return_indices=True, bundles=BUNDLES, **kw)
        assert (fake_out.shape, fake_out.dtype) == (out.shape, out.dtype), cid
        assert (fake_idx.shape, fake_idx.dtype) == (idx.shape, idx.dtype), cid


def test_graph_sparse_indexer_nsa():
    """Sparse attention (DSA), the lightning indexer and NSA: torch ops and
    attn's kernels in one capture."""
    c = _case(gpu_cases.SPARSE_CASES, "dsa_decode_topk512_b4")
    q, kv, idx = test_gpu.sparse_inputs(c)
    _check_graph(lambda q, kv, idx: gpu.sparse_attention(
        q, kv, kv[..., :c["dv"]], idx, block_size=c["block"], causal=c["causal"], scale=0.1352,
        return_lse=c["lse"], bundles=BUNDLES), [q, kv, idx])

    c = _case(gpu_cases.INDEXER_CASES, "indexer_nomask_sk100_topk128")
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(c["b"], c["sq"], c["heads"], c["d"], device="cuda", generator=gen).bfloat16()
    k = torch.randn(c["b"], c["sk"], c["d"], device="cuda", generator=gen).bfloat16()
    w = torch.randn(c["b"], c["sq"], c["heads"], device="cuda", generator=gen)
    _check_graph(lambda q, k, w: gpu.lightning_indexer(
        q, k, w, c["top_k"], causal=c["causal"], return_scores=True, bundles=BUNDLES), [q, k, w])

    c = _case(gpu_cases.NSA_CASES, "nsa_t63_b3")
    _check_graph(lambda *x: gpu.nsa(
        *x, cmp_block=c["cmp_block"], cmp_stride=c["cmp_stride"], sel_block=c["sel_block"],
        num_selected=c["num_selected"], window=c["window"], return_indices=True,
        bundles=BUNDLES), list(test_gpu.nsa_inputs(c)))


def test_custom_ops_opcheck():
    """torch.library's checks of the ops: schema, fake (meta) kernels
    against the real ones, no aliasing of inputs."""
    os.environ.setdefault("ATTN_BUNDLES", BUNDLES)
    c = _case(gpu_cases.CASES, "gqa4_causal_d64")
    q, k, v = _dense_inputs(c)
    torch.library.opcheck(torch.ops.attn.attention.default,
                          (q, k, v, True, None, None, None, None, None, "bhsd", True))
    c = _case(gpu_cases.PAGED_CASES, "paged_mixed_lengths_p16")
    q, kc, vc, table, lens, _, _, _ = test_gpu.paged_inputs(c)
    torch.library.opcheck(torch.ops.attn.paged_attention.default,
                          (q, kc, vc, table, lens, True, None, None, None, None, "nhd", True,
                           None))
    c = _case(gpu_cases.GATED_CASES, "gdn_t65_d100_init")
    q, k, v, g, beta, s0 = test_gpu.gated_inputs(c)
    torch.library.opcheck(torch.ops.attn.gated_delta_rule.default,
                          (q, k, v, g, beta, s0, c["l2norm"], c["scale"], "auto"))


class _LlamaBlock(torch.nn.Module):
    """A Llama-style attention block: GQA 8/2 heads of 64, RMSNorm, causal
    attention through attn's custom op, output projection, residual."""

    def __init__(self, dim=512, heads=8, kv_heads=2):
        super().__init__()
        self.heads, self.kv_heads, self.d = heads, kv_heads, dim // heads
        self.norm = torch.nn.RMSNorm(dim)
        self.wq = torch.nn.Linear(dim, heads * self.d, bias=False)
        self.wk = torch.nn.Linear(dim, kv_heads * self.d, bias=False)
        self.wv = torch.nn.Linear(dim, kv_heads * self.d, bias=False)
        self.wo = torch.nn.Linear(heads * self.d, dim, bias=False)

    def forward(self, x):
        b, s, _ = x.shape
        h = self.norm(x)
        q = self.wq(h).view(b, s, self.heads, self.d).transpose(1, 2).contiguous()
        k = self.wk(h).view(b, s, self.kv_heads, self.d).transpose(1, 2).contiguous()
        v = self.wv(h).view(b, s, self.kv_heads, self.d).transpose(1, 2).contiguous()
        o, _ = attn.ops.attention(q, k, v, causal=True, return_lse=True)
        return x + self.wo(o.transpose(1, 2).reshape(b, s, -1))


def test_torch_compile_fullgraph():
    """torch.compile traces a block that calls attn with no graph break
    (fullgraph=True) and gives the eager block's result."""
    os.environ.setdefault("ATTN_BUNDLES", BUNDLES)
    torch.manual_seed(0)
    # Inference: attn has no backward yet, so nothing here may ask for one.
    block = _LlamaBlock().cuda().to(torch.bfloat16).requires_grad_(False)
    x = torch.randn(2, 300, 512, device="cuda", dtype=torch.bfloat16)
    eager = block(x)
    compiled = torch.compile(block, fullgraph=True)
    out = compiled(x)
    torch.cuda.synchronize()
    err = (out.float() - eager.float()).abs().max().item()
    print(f"\ntorch.compile vs eager: max |diff| = {err:.3e}")
    assert err < 5e-2, f"compiled block differs from eager by {err}"
    explain = torch._dynamo.explain(block)(x)
    assert explain.graph_break_count == 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="one GPU on this machine: the "
                    "second-device test needs two")
def test_second_device():
    """Tensors on cuda:1 while cuda:0 is current: kernels are loaded and run
    in cuda:1's context, on every call (the fast path leaves calls whose
    device is not current to the Python path, which switches); with cuda:1
    current, the fast path runs them on cuda:1."""
    c = _case(gpu_cases.CASES, "gqa4_causal_d64")
    q, k, v = (t.to("cuda:1") for t in _dense_inputs(c))
    o0, _ = gpu.attention(q.to("cuda:0"), k.to("cuda:0"), v.to("cuda:0"), causal=True,
                          return_lse=True, bundles=BUNDLES)
    for current in (0, 0, 1, 1, 1):
        with torch.cuda.device(current):
            o1, _ = gpu.attention(q, k, v, causal=True, return_lse=True, bundles=BUNDLES)
        assert o1.device.index == 1 and torch.equal(o1.cpu(), o0.cpu()), current
    torch.cuda.synchronize(1)


# --------------------------------------------------------------------------
# The native fast path against the Python path


def _fast():
    """The fast path's module, or a skip that says why there is none."""
    status = gpu.fastpath_status()
    module = gpu._fastpath()
    if module is None:
        pytest.skip(f"no fast path here: {gpu.fastpath_status()} (status before: {status})")
    return module


def _three_ways(fast, fn):
    """fn() on the Python path, then twice with the fast path (the first
    registers the call's plan, the second takes it): the same kernels on the
    same data give the same bits."""
    previous = gpu.set_fastpath(False)
    try:
        slow = fn()
    finally:
        gpu.set_fastpath(previous)
    first = fn()
    hits = fast.stats()["hits"]
    second = fn()
    assert fast.stats()["hits"] == hits + 1, f"the call did not take the fast path: {fast.stats()}"
    torch.cuda.synchronize()
    for r in (first, second):
        r = r if isinstance(r, tuple) else (r,)
        for a, b in zip(r, slow if isinstance(slow, tuple) else (slow,)):
            assert a.dtype == b.dtype and _same(a, b), "the fast path's result differs"
    return second


@pytest.mark.parametrize("cid", ["mha_bf16", "gqa4_causal_d64", "window_left_right_bshd_f16",
                                 "mla_d192_dv128", "softcap", "sinks_window", "bias",
                                 "mla_sinks_lse_bshd_1000", "f16_decode_len1"])
def test_fastpath_dense(cid):
    """wgmma (TMA descriptors by value) and mma.sync kernels, GQA, causal,
    window, softcap, sinks, bias, return_lse, bhsd and bshd."""
    fast = _fast()
    c = _case(gpu_cases.CASES, cid)
    q, k, v = _dense_inputs(c)
    extra = {}
    if c["bias"] is not None:
        full = (c["b"], c["hq"], c["sq"], c["sk"])
        extra["bias"] = torch.randn([1 if bc else n for bc, n in zip(c["bias"], full)],
                                    device="cuda", dtype=q.dtype)
    if c["sinks"]:
        extra["sinks"] = torch.randn(c["hq"], device="cuda", dtype=torch.float32)
    _three_ways(fast, lambda: gpu.attention(
        q, k, v, causal=c["causal"], window=c["window"], softcap=c["softcap"], scale=c["scale"],
        layout=c["layout"], return_lse=c["lse"], bundles=BUNDLES, **extra))
    # out= given: written and returned.
    out = torch.empty_like(q[..., :c["dv"]]) if c["d"] == c["dv"] else None
    if out is not None:
        r = gpu.attention(q, k, v, causal=c["causal"], window=c["window"], softcap=c["softcap"],
                          scale=c["scale"], layout=c["layout"], bundles=BUNDLES, out=out, **extra)
        assert r is out


@pytest.mark.parametrize("cid", ["paged_mixed_lengths_p16", "paged_sinks_lse_empty",
                                 "mla_b4_h32_mtp2", "paged_p61_hnd_f16", "paged_p64_mqa_i64",
                                 "paged_d64_noncausal_split7"])
def test_fastpath_paged(cid):
    """Split and combine kernels, the split heuristic in C, single-token
    (3-D) q, MLA's latent cache (v a view of k), HND, int64 tables, sinks and
    LSE, a fixed number of splits."""
    fast = _fast()
    c = _case(gpu_cases.PAGED_CASES, cid)
    q, kc, vc, table, lens, _, _, sinks = test_gpu.paged_inputs(c)
    table, lens = table.to(q.device), lens.to(q.device)
    if table.dtype != lens.dtype:
        lens = lens.to(table.dtype)  # the fast path takes one integer type
    if c["sq"] == 1 and q.dim() == 4:
        q = q[:, 0].contiguous()  # a single token: q [B, Hq, D]
    v = kc[..., :c["dv"]] if c["v_prefix"] else vc
    _three_ways(fast, lambda: gpu.paged_attention(
        q, kc, v, table, lens, causal=c["causal"], window=c["window"], softcap=c["softcap"],
        scale=c["scale"], sinks=sinks, cache_layout=c["layout"], return_lse=c["lse"],
        num_splits_override=c["splits"], bundles=BUNDLES))


def test_fastpath_paged_workspace_reuse():
    """The workspace a fast paged call keeps for its stream: calls on new
    queries back to back, on two streams at once, with no synchronization
    between them, each give the Python path's bits (which allocates a fresh
    workspace per call)."""
    fast = _fast()
    c = _case(gpu_cases.PAGED_CASES, "paged_mixed_lengths_p16")
    q, kc, vc, table, lens, _, _, _ = test_gpu.paged_inputs(c)
    table, lens = table.to(q.device), lens.to(q.device).to(table.dtype)

    def call(q):
        return gpu.paged_attention(q, kc, vc, table, lens, causal=True, return_lse=True,
                                   bundles=BUNDLES)
    qs = [torch.randn_like(q) for _ in range(6)]
    previous = gpu.set_fastpath(False)
    try:
        want = [call(x) for x in qs]
    finally:
        gpu.set_fastpath(previous)
    call(qs[0])  # registers the plan
    torch.cuda.synchronize()
    hits = fast.stats()["hits"]
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    got = [None] * len(qs)
    for i, x in enumerate(qs):
        with torch.cuda.stream(streams[i % 2]):
            got[i] = call(x)
    torch.cuda.synchronize()
    assert fast.stats()["hits"] == hits + len(qs)
    assert fast.stats()["workspaces"] >= 2
    for a, b in zip(got, want):
        assert _same(a[0], b[0]) and _same(a[1], b[1]), "a kept workspace changed a result"


def test_fastpath_graph_capture():
    """The fast path under CUDA-graph capture: the captured calls take it,
    and replays give the eager results."""
    fast = _fast()
    c = _case(gpu_cases.CASES, "gqa4_causal_d64")
    hits = fast.stats()["hits"]

    def fn(q, k, v):
        return gpu.attention(q, k, v, causal=True, return_lse=True, bundles=BUNDLES)
    _check_graph(fn, _dense_inputs(c))
    assert fast.stats()["hits"] > hits
    p = _case(gpu_cases.PAGED_CASES, "paged_mixed_lengths_p16")
    q, kc, vc, table, lens, _, _, _ = test_gpu.paged_inputs(p)
    hits = fast.stats()["hits"]
    _check_graph(lambda q, kc, vc, table, lens: gpu.paged_attention(
        q, kc, vc, table, lens, causal=True, return_lse=True, bundles=BUNDLES),
        [q, kc, vc, table.to(q.device), lens.to(q.device).to(table.dtype)])
    assert fast.stats()["hits"] > hits


def test_fastpath_errors_are_the_python_paths():
    """A bad call on a warm plan raises the Python path's ValueError."""
    _fast()
    c = _case(gpu_cases.CASES, "gqa4_causal_d64")
    q, k, v = _dense_inputs(c)
    gpu.attention(q, k, v, causal=True, return_lse=True, bundles=BUNDLES)
    with pytest.raises(ValueError, match="contiguous"):
        gpu.attention(q.transpose(2, 3), k, v, causal=True, return_lse=True, bundles=BUNDLES)
    with pytest.raises(ValueError, match="same dtype"):
        gpu.attention(q, k.half(), v, causal=True, return_lse=True, bundles=BUNDLES)
    shifted = torch.empty(q.numel() + 8, device="cuda", dtype=q.dtype)[1:1 + q.numel()]
    with pytest.raises(ValueError, match="16-byte aligned"):  # 2 bytes past an aligned start
        gpu.attention(shifted.view(q.shape), k, v, causal=True, return_lse=True,
                      bundles=BUNDLES)


def test_fastpath_host_time():
    """The fast path's host time per call, printed (pytest -s); the goal is
    15 us for attention and 25 us for paged decode on an H200 host."""
    fast = _fast()
    from attn import cudatime

    c = _case(gpu_cases.CASES, "gqa4_causal_d64")
    q, k, v = (t[:1, :, :128].contiguous() for t in _dense_inputs(c))
    call = lambda: gpu.attention(q, k, v, causal=True, bundles=BUNDLES)  # noqa: E731
    call()
    fast_us = cudatime.host_us(call, iters=500)
    gpu.set_fastpath(False)
    try:
        slow_us = cudatime.host_us(call, iters=500)
    finally:
        gpu.set_fastpath(True)
    print(f"\nattention host time: fast path {fast_us:.1f} us, Python path {slow_us:.1f} us "
          f"({gpu.fastpath_status()})")
    assert fast.stats()["hits"] > 500


def _jit_call(scale):
    """A variant no bundle directory holds: causal GQA bf16 d128 with its
    own scale; returns the output and the SDPA reference's error floor."""
    g = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(1, 8, 333, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, 2, 333, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(1, 2, 333, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    out = gpu.attention(q, k, v, causal=True, scale=scale, bundles=os.devnull)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double().repeat_interleave(4, 1), v.double().repeat_interleave(4, 1),
        is_causal=True, scale=scale)
    low = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(4, 1), v.repeat_interleave(4, 1), is_causal=True, scale=scale)
    return (out.double() - ref).abs().max().item(), (low.double() - ref).abs().max().item()


@pytest.mark.skipif(jit.find_compiler() is None,
                    reason="no attn-compile here (set ATTN_COMPILE; .ci/standalone-compiler "
                           "builds one that runs without LLVM)")
def test_jit_first_call_then_cache(tmp_path, monkeypatch):
    """A variant never compiled before: compiled on the first call into an
    empty cache; a new process then finds it there and compiles nothing."""
    monkeypatch.setenv("ATTN_CACHE_DIR", str(tmp_path))
    start = time.perf_counter()
    err, base = _jit_call(0.0712)
    first = time.perf_counter() - start
    assert err <= 2 * base + 1e-3
    entries = jit.entries(str(tmp_path))
    assert len(entries) == 1, entries
    code = ("import sys, time, torch; sys.path[:0] = %r\n"
            "import test_runtime_gpu as t\n"
            "s = time.perf_counter(); e, b = t._jit_call(0.0712)\n"
            "print('seconds', time.perf_counter() - s, 'ok', e <= 2 * b + 1e-3)\n"
            % ([os.path.dirname(__file__), os.path.join(os.path.dirname(__file__), "..")],))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, ATTN_CACHE_DIR=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    print(f"\nfirst call with compilation: {first:.2f} s; new process: {r.stdout.strip()}")
    assert "ok True" in r.stdout
    assert len(jit.entries(str(tmp_path))) == 1, "the second process compiled again"


def test_jit_without_compiler_names_the_command(tmp_path, monkeypatch):
    """No compiler: the error names the variant and the command that builds
    it ahead of time."""
    monkeypatch.setenv("ATTN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("ATTN_COMPILE", str(tmp_path / "no-attn-compile"))
    with pytest.raises(LookupError, match=r"python -m attn.bundles --variant"):
        _jit_call(0.0713)


# --------------------------------------------------------------------------
# The fast path on synthetic kernels (fastpath_kernels.cu, built with nvcc):
# kernels with the manifests' parameter ABI that copy q to o and write what
# they were passed into the LSE, so that the bytes are checked on the GPU
# without attn-compile's bundles.

_M = ["allocated_ptr", "aligned_ptr", "offset", "size", "stride"]


def _synthetic_manifests():
    mem = lambda n, role="tensor": {"kind": "memref", "name": n, "role": role,  # noqa: E731
                                    "expands_to": _M}
    sc = lambda n, dt="i64": {"kind": "scalar", "name": n, "dtype": dt}  # noqa: E731
    tma = lambda t, box: {"kind": "tensormap", "name": t + "_tma", "tensor": t,  # noqa: E731
                          "box": box, "passing": "param"}
    # Every value at run time, as the compiler's default kernels take them
    # (KernelSignature::runtimeValues): the scale, then the softcap and the
    # window's extents where the variant has them.
    runtime = [sc("scale", "f32"), sc("softcap", "f32"), sc("window_left"), sc("window_right")]
    window = {"mask": "window", "window_left": "runtime", "window_right": "runtime",
              "scale": "runtime", "softcap": "runtime"}
    tmas = [tma("q", [64, 128]), tma("k", [64, 64]), tma("v", [64, 64])]
    sizes = [sc(n) for n in ("B", "Hq", "Hkv", "Sq", "Sk")]
    grid = {"grid": [{"ceil_div": ["Sq", 128]}, "Hq", "B"], "block": [128, 1, 1],
            "dynamic_shared_memory": 0}
    dense = dict(grid, entry="dense", ptx="k.ptx", kernel="wgmma",
                 variant=dict(window, dtype="bf16", head_dim=64, value_head_dim=64,
                              layout="bhsd", bias=False, sinks=False, lse=True),
                 params=[mem(n) for n in ("q", "k", "v", "o", "lse")] + tmas + sizes + runtime)
    causal = dict(grid, entry="dense_causal", ptx="k.ptx", kernel="wgmma",
                  variant={"dtype": "bf16", "head_dim": 64, "value_head_dim": 64,
                           "layout": "bhsd", "mask": "causal", "scale": "runtime",
                           "softcap": None, "bias": False, "sinks": False, "lse": False},
                  params=[mem(n) for n in ("q", "k", "v", "o")] + tmas + sizes
                  + [sc("scale", "f32")])
    paged = dict(window, op="paged_attention", dtype="bf16", head_dim=128, value_head_dim=128,
                 page_size=16, cache_layout="nhd", table_dtype="i32", lens_dtype="i32",
                 values="separate")
    split = {"entry": "split", "ptx": "k.ptx", "kernel": "paged.mma.sync", "variant": paged,
             "rows_per_block": 16, "value_chunks": 1,
             "params": [mem("q"), mem("k_cache"), mem("v_cache", "value_cache")]
             + [mem(n) for n in ("block_table", "seq_lens", "o_part", "lse_part")]
             + [sc(n) for n in ("B", "Hq", "Hkv", "Sq", "MaxPages", "Splits", "VStride")]
             + runtime,
             "grid": [{"mul": [{"ceil_div": [{"mul": [{"div": ["Hq", "Hkv"]}, "Sq"]}, 16]},
                               "Splits"]}, "Hkv", "B"],
             "block": [128, 1, 1], "dynamic_shared_memory": 0}
    combine = {"entry": "combine", "ptx": "k.ptx", "kernel": "paged.combine",
               "variant": {"op": "paged_combine", "dtype": "bf16", "value_head_dim": 128,
                           "sinks": False, "lse": True},
               "params": [mem(n) for n in ("o_part", "lse_part", "o", "lse")]
               + [sc(n) for n in ("B", "Sq", "Hq", "Splits")],
               "grid": [{"mul": ["B", "Sq", "Hq"]}, 1, 1], "block": [128, 1, 1],
               "dynamic_shared_memory": 0}
    return [dense, causal, split, combine]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A bundle directory of the synthetic kernels (a skip without nvcc or a
    Hopper GPU: they are built for sm_90a)."""
    import json
    import shutil

    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc"
                                    if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if nvcc is None or torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the synthetic kernels need nvcc and a Hopper GPU (sm_90a)")
    d = tmp_path_factory.mktemp("synthetic")
    subprocess.run([nvcc, "-arch=sm_90a", "-ptx",
                    os.path.join(os.path.dirname(__file__), "fastpath_kernels.cu"),
                    "-o", str(d / "k.ptx")], check=True)
    for m in _synthetic_manifests():
        (d / (m["entry"] + ".json")).write_text(json.dumps(m))
    return str(d)


def test_fastpath_synthetic_dense(synthetic):
    """What the wgmma-shaped kernel received: the sizes, the run-time values
    (scale and softcap as f32 bits, the window's extents), k and v addresses and element counts, grid and
    block, and descriptors byte-equal to the Python path's encoding; o = q."""
    import ctypes

    import numpy as np

    fast = _fast()
    q, k, v = (torch.randn(1, 8, 128, 64, device="cuda", dtype=torch.bfloat16)
               for _ in range(3))
    out, lse = _three_ways(fast, lambda: gpu.attention(
        q, k, v, window=(100, 3), softcap=30.0, return_lse=True, bundles=synthetic))
    assert torch.equal(out, q)
    d = [int(x) & 0xFFFFFFFF for x in lse.view(torch.int32).flatten()[:128].tolist()]
    assert d[:5] == [1, 8, 8, 128, 128]
    assert d[5] == int(np.float32(0.125).view(np.uint32))
    assert d[6] == int(np.float32(30.0).view(np.uint32))
    assert (d[7], d[8]) == (100, 3)
    assert d[9] | d[10] << 32 == k.data_ptr() and d[11] | d[12] << 32 == v.data_ptr()
    assert d[13] == k.numel() and d[14] == v.numel()
    assert d[15:22] == [0, 5, 1, 8, 1, 128, 5]  # offsets 0, strides 1, grid, block, aligned
    for words, t, box in ((d[32:64], q, [64, 128]), (d[64:96], k, [64, 64]),
                          (d[96:128], v, [64, 64])):
        raw = ctypes.string_at(gpu._tensor_map(t, "bhsd", box), 128)
        assert np.array(words, dtype=np.uint32).tobytes() == raw


def test_fastpath_synthetic_paged(synthetic):
    """Split and combine kernels: o = q through o_part, the LSE carries the
    splits (num_splits' answer), VStride and the run-time values."""
    import numpy as np

    fast = _fast()
    b, hq, hkv, d, page, ctx = 8, 32, 8, 128, 16, 8192
    pages = b * ctx // page
    kc = torch.randn(pages, page, hkv, d, device="cuda", dtype=torch.bfloat16)
    vc = torch.randn(pages, page, hkv, d, device="cuda", dtype=torch.bfloat16)
    table = torch.randperm(pages, device="cuda").view(b, ctx // page).to(torch.int32)
    lens = torch.full((b,), ctx, device="cuda", dtype=torch.int32)
    q = torch.randn(b, hq, d, device="cuda", dtype=torch.bfloat16)
    out, lse = _three_ways(fast, lambda: gpu.paged_attention(
        q, kc, vc, table, lens, window=(4096, 0), softcap=30.0, return_lse=True,
        bundles=synthetic))
    assert torch.equal(out, q) and lse.shape == (b, hq)
    sms = torch.cuda.get_device_properties(q.device).multi_processor_count
    splits = gpu.num_splits(b, hkv, 1, ctx, sms, 2)
    f = np.float32
    want = float(f(splits + 1000 * d) + f(1 / d ** 0.5) + f(30.0) + f(4096) + f(1e-3) * f(0))
    assert bool((lse == want).all()), (lse[0, :4], splits)


def test_fastpath_synthetic_graph(synthetic):
    """A captured fast-path call replays with new data."""
    fast = _fast()
    q, k, v = (torch.randn(1, 8, 128, 64, device="cuda", dtype=torch.bfloat16)
               for _ in range(3))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    call = lambda: gpu.attention(q, k, v, window=(100, 3), softcap=30.0,  # noqa: E731
                                 return_lse=True, bundles=synthetic)
    with torch.cuda.stream(side):
        for _ in range(2):
            call()
    torch.cuda.current_stream().wait_stream(side)
    graph, hits = torch.cuda.CUDAGraph(), fast.stats()["hits"]
    with torch.cuda.graph(graph):
        out, _ = call()
    assert fast.stats()["hits"] == hits + 1
    for _ in range(2):
        q.copy_(torch.randn_like(q))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, q)


def test_fastpath_synthetic_ops_and_host_time(synthetic, monkeypatch):
    """The custom ops on the synthetic kernels (opcheck, torch.compile), and
    the host time per call of each path, printed (pytest -s)."""
    from attn import cudatime

    fast = _fast()
    monkeypatch.setenv("ATTN_BUNDLES", synthetic)
    # A call the synthetic kernels do not serve must fail, not compile a
    # real kernel on first use.
    monkeypatch.setenv("ATTN_COMPILE", os.devnull)
    q, k, v = (torch.randn(1, 8, 128, 64, device="cuda", dtype=torch.bfloat16)
               for _ in range(3))
    torch.library.opcheck(torch.ops.attn.attention.default,
                          (q, k, v, True, None, None, None, None, None, "bhsd", False))
    f = lambda q, k, v: attn.ops.attention(q, k, v, causal=True) * 2  # noqa: E731
    assert torch.equal(torch.compile(f, fullgraph=True)(q, k, v), f(q, k, v))
    direct = lambda: gpu.attention(q, k, v, causal=True, bundles=synthetic)  # noqa: E731

    def python_path():
        gpu.set_fastpath(False)
        try:
            return direct()
        finally:
            gpu.set_fastpath(True)
    rows = [("attn.gpu.attention, fast path", direct),
            ("attn.gpu.attention, Python path", python_path),
            ("attn.ops.attention", lambda: attn.ops.attention(q, k, v, causal=True))]
    report = []
    for label, fn in rows:
        fn()
        report.append(f"{label}: {min(cudatime.host_us(fn, iters=300) for _ in range(3)):.1f} us")
    print("\nhost time per call (synthetic kernel):\n  " + "\n  ".join(report))
    assert fast.stats()["hits"] > 0
