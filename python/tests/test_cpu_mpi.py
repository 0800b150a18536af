# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attn.attention sharded over a device grid and run under MPI on the CPU.

Each case annotates one attention with the shard dialect (batch, head,
query-sequence or key-sequence split over a 1-D grid of 2 or 4 devices),
partitions it with upstream's sharding-propagation and shard-partition
(attn.attention's ShardingInterface), lowers it with attn-to-cpu's `mpi`
option and runs it under `mpirun -np 2` and `-np 4`. Every rank's result
must equal its block of the single-process result on the same inputs
(f32, within 1e-5 of the output's scale; -inf LSE rows identical).
Skips when mpirun or an MPI library is missing (.ci/build installs MPICH).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import cpu  # noqa: E402
from seeds import stable_seed  # noqa: E402

pytestmark = [
    pytest.mark.skipif(cpu.tools() is None, reason="attn-opt or mlir-runner not found"),
    pytest.mark.skipif(cpu.mpi() is None,
                       reason="mpirun or an MPI library (libmpich/libmpi) not found; "
                              ".ci/build installs MPICH"),
]


def case(id, split, b=1, hq=2, hkv=2, sq=16, sk=16, d=16, mask="none", left=0,
         lse=False, sinks=False, layout="bhsd"):
    return pytest.param(dict(split=split, b=b, hq=hq, hkv=hkv, sq=sq, sk=sk, d=d,
                             mask=mask, left=left, lse=lse, sinks=sinks, layout=layout),
                        id=id)


CASES = [
    case("batch_causal_lse", "batch", b=4, mask="causal", lse=True),
    case("head_gqa_sinks_lse", "head", hq=8, hkv=4, sinks=True, lse=True),
    case("head_gqa_causal_bshd", "head", hq=8, hkv=4, mask="causal", layout="bshd"),
    case("query_causal_lse", "query", sq=16, sk=24, mask="causal", lse=True),
    case("query_window_bshd", "query", hq=4, hkv=2, sq=16, sk=16, mask="window", left=3,
         layout="bshd"),
    case("key_lse", "key", sq=8, sk=32, lse=True),
    case("key_causal_sinks_lse", "key", hq=2, hkv=1, sq=16, sk=16, mask="causal",
         sinks=True, lse=True),
    case("key_causal_decode", "key", hq=4, hkv=2, sq=4, sk=32, mask="causal"),
    case("key_causal_empty_rows_lse", "key", sq=24, sk=16, mask="causal", lse=True),
    case("key_window_bshd_lse", "key", sq=32, sk=32, mask="window", left=5, layout="bshd",
         lse=True),
]


def shapes(c):
    def shape(h, s):
        return [c["b"], s, h, c["d"]] if c["layout"] == "bshd" else [c["b"], h, s, c["d"]]
    return shape(c["hq"], c["sq"]), shape(c["hkv"], c["sk"]), [c["b"], c["hq"], c["sq"]]


def split_dims(c):
    """The dim each of Q, K/V, O and LSE is split along (None: replicated)."""
    h, s = (2, 1) if c["layout"] == "bshd" else (1, 2)
    return {"batch": (0, 0, 0, 0), "head": (h, h, h, 1), "query": (s, None, s, 2),
            "key": (None, s, None, None)}[c["split"]]


def signature(c):
    """Argument and result types, and the attn.attention text."""
    qs, ks, ls = shapes(c)
    tq, tk = cpu.tensor_type(qs, "f32"), cpu.tensor_type(ks, "f32")
    args = [("%q", tq), ("%k", tk), ("%v", tk)]
    extra = ""
    if c["sinks"]:
        args.append(("%sinks", cpu.tensor_type([c["hq"]], "f32")))
        extra += " sinks(%sinks)"
    if c["layout"] == "bshd":
        extra += " layout = bshd"
    if c["mask"] == "causal":
        extra += " mask = <causal>"
    elif c["mask"] == "window":
        extra += f" mask = <window, left = {c['left']}, right = 0>"
    results = [tq] + ([cpu.tensor_type(ls, "f32")] if c["lse"] else [])
    return args, results, extra


def plain_module(c):
    args, results, extra = signature(c)
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    return (f"func.func @attn({', '.join(f'{n}: {t}' for n, t in args)}) -> ({', '.join(results)}) {{\n"
            f"  {rn} = attn.attention {', '.join(n for n, _ in args[:3])}{extra} : "
            f"({', '.join(t for _, t in args)}) -> ({', '.join(results)})\n"
            f"  return {rn} : {', '.join(results)}\n}}\n")


def sharded_module(c, ranks):
    """The function with its arguments replicated and Q, K and V annotated
    for the attention as the case splits them; propagation does the rest."""
    args, results, extra = signature(c)
    dq, dkv, _, _ = split_dims(c)
    def split(dim):
        axes = [[] for _ in range(4)]
        if dim is not None:
            axes[dim] = [0]
        while axes and not axes[-1]:
            axes.pop()
        return "[" + ", ".join(str(a) for a in (axes or [[]])) + "]"
    body = (f"  %rep = shard.sharding @grid split_axes = [[]] : !shard.sharding\n"
            f"  %sq = shard.sharding @grid split_axes = {split(dq)} : !shard.sharding\n"
            f"  %skv = shard.sharding @grid split_axes = {split(dkv)} : !shard.sharding\n")
    operands = {}
    for n, t in args:
        body += f"  {n}0 = shard.shard {n} to %rep : {t}\n"
        operands[n] = f"{n}0"
    for n, t in args[:3]:
        target = "%sq" if n == "%q" else "%skv"
        body += f"  {n}1 = shard.shard {n}0 to {target} annotate_for_users : {t}\n"
        operands[n] = f"{n}1"
    if c["sinks"]:
        extra = extra.replace("sinks(%sinks)", f"sinks({operands['%sinks']})")
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    body += (f"  {rn} = attn.attention {', '.join(operands[n] for n, _ in args[:3])}{extra} : "
             f"({', '.join(t for _, t in args)}) -> ({', '.join(results)})\n"
             f"  return {rn} : {', '.join(results)}\n")
    return (f"shard.grid @grid(shape = {ranks})\n"
            f"func.func @attn({', '.join(f'{n}: {t}' for n, t in args)}) -> ({', '.join(results)}) {{\n"
            f"{body}}}\n")


def partition(text):
    """The module after sharding-propagation and shard-partition."""
    opt = cpu.tools()[0]
    out = subprocess.run(
        [opt, "-", "--pass-pipeline=builtin.module(func.func(sharding-propagation,shard-partition))"],
        input=text.encode(), capture_output=True, timeout=120)
    if out.returncode:
        raise RuntimeError("partitioning failed:\n" + out.stderr.decode())
    # The module's body (after its attribute aliases), for @main to join.
    lines = out.stdout.decode().rstrip().splitlines()
    start = lines.index("module {")
    assert lines[-1] == "}"
    return "\n".join(lines[:start] + lines[start + 1:-1]) + "\n"


def block(x, dim, rank, ranks):
    if dim is None:
        return x
    n = x.shape[dim] // ranks
    return np.take(x, range(rank * n, (rank + 1) * n), axis=dim)


_SINGLE = {}


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("c", CASES)
def test_sharded_attention(c, ranks):
    rng = np.random.default_rng(stable_seed(sorted(c.items())))
    qs, ks, ls = shapes(c)
    q = rng.standard_normal(qs).astype(np.float32)
    k = rng.standard_normal(ks).astype(np.float32)
    v = rng.standard_normal(ks).astype(np.float32)
    args = [(q, "f32"), (k, "f32"), (v, "f32")]
    if c["sinks"]:
        args.append((rng.standard_normal(c["hq"]).astype(np.float32), "f32"))
    full = [(qs, "f32")] + ([(ls, "f32")] if c["lse"] else [])

    # The single-process result, once per case.
    key = str(sorted(c.items()))
    if key not in _SINGLE:
        _SINGLE[key] = cpu.run(plain_module(c), "attn", args, full)
    single = _SINGLE[key]

    _, _, do, dl = split_dims(c)
    dims = [do, dl]
    def local(rank):
        out = []
        for (shape, dtype), dim in zip(full, dims):
            shape = list(shape)
            if dim is not None:
                shape[dim] //= ranks
            out.append((shape, dtype))
        return out

    program = partition(sharded_module(c, ranks))
    if c["split"] == "key":
        assert "shard.all_reduce" in program, "a key split merges by all_reduce"
    else:
        assert "shard.all_reduce" not in program, f"a {c['split']} split communicates nothing"
    per_rank = cpu.run_mpi(program, "attn", args, local, ranks)

    scale = max(1.0, np.abs(single[0]).max())
    for rank, got in enumerate(per_rank):
        o = got[0].astype(np.float64)
        want = block(single[0], do, rank, ranks).astype(np.float64)
        assert not np.isnan(o).any(), f"rank {rank}: NaN in the output"
        err = np.abs(o - want).max()
        assert err <= 1e-5 * scale, f"rank {rank}: max error {err:.3g}"
        if c["lse"]:
            lse = got[1].astype(np.float64)
            want = block(single[1], dl, rank, ranks).astype(np.float64)
            assert not np.isnan(lse).any(), f"rank {rank}: NaN in the LSE"
            assert np.array_equal(np.isneginf(lse), np.isneginf(want)), \
                f"rank {rank}: -inf rows differ"
            fin = np.isfinite(want)
            d = np.abs(lse[fin] - want[fin]).max(initial=0)
            assert d <= 1e-5 * max(1.0, np.abs(want[fin]).max(initial=0)), \
                f"rank {rank}: lse error {d:.3g}"
