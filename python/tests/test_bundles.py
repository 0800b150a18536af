# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""python -m attn.bundles without the compiler: the kernel spec of each
variant (spec_of, docs/kernel-spec.md) and how compile_variants hands specs
to `attn-compile --spec` (a stand-in tool that records its calls)."""

import io
import json
import math
import os
import stat
import sys
import tempfile

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import bundles  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

_SCALE = 1 / math.sqrt(128)


def _dense(**fields):
    v = {"dtype": "bf16", "head_dim": 128, "value_head_dim": 128, "layout": "bhsd",
         "mask": "none", "scale": _SCALE, "softcap": None, "bias": False, "sinks": False,
         "lse": False}
    v.update(fields)
    return v


def test_spec_of_attention():
    # Scale, softcap and window extents are kernel arguments by default
    # (docs/kernel-spec.md); "specialize" compiles the numbers in.
    assert bundles.spec_of(_dense()) == dict(_dense(), op="attention", version=2,
                                             scale="runtime")
    assert bundles.spec_of(_dense(specialize=True)) == dict(_dense(), op="attention", version=2)
    spec = bundles.spec_of(_dense(softcap=30.0, mask="window", window_left=3, window_right=0))
    assert (spec["scale"], spec["softcap"], spec["window_left"], spec["window_right"]) == \
        ("runtime",) * 4
    # A negative scale stays compiled in: no run-time kernel takes one.
    assert bundles.spec_of(_dense(scale=-0.5))["scale"] == -0.5
    assert not bundles.runtime_values(_dense(scale=-0.5))
    # Keys that mean something only with another are dropped without it.
    spec = bundles.spec_of(_dense(window_left=3, window_right=0, sinks_dtype="f32",
                                  bias_dtype="f16", bias_broadcast=[True] * 4))
    assert not {"window_left", "window_right", "sinks_dtype", "bias_dtype",
                "bias_broadcast"} & set(spec)
    spec = bundles.spec_of(_dense(mask="window", window_left=127, window_right=0, sinks=True,
                                  sinks_dtype="f32", bias=True, bias_dtype="f16",
                                  bias_broadcast=(False, True, False, False), specialize=True))
    assert (spec["window_left"], spec["window_right"]) == (127, 0)
    assert spec["sinks_dtype"] == "f32" and spec["bias_dtype"] == "f16"
    assert spec["bias_broadcast"] == [False, True, False, False]
    # The body and tiling pass through; keys outside the schema do not.
    spec = bundles.spec_of(_dense(kernel="mma", block_q=64, block_kv=32, note="x"))
    assert (spec["kernel"], spec["block_q"], spec["block_kv"]) == ("mma", 64, 32)
    assert "note" not in spec
    # JSON data, also from NumPy's numbers.
    spec = bundles.spec_of(_dense(head_dim=np.int64(64), scale=np.float32(0.125),
                                  specialize=True))
    assert json.loads(json.dumps(spec)) == spec
    assert type(spec["head_dim"]) is int and spec["scale"] == 0.125


def test_spec_of_attention_grad():
    # The forward's keys without lse and the body's; values at run time.
    grad = dict(_dense(mask="causal", softcap=30.0, lse=True, kernel="auto"), op="attention_grad")
    spec = bundles.spec_of(grad)
    assert spec["op"] == "attention_grad" and spec["version"] == 2
    assert (spec["scale"], spec["softcap"], spec["mask"]) == ("runtime", "runtime", "causal")
    assert not {"lse", "kernel", "block_q", "block_kv"} & set(spec)
    assert "kernel" not in bundles.spec_of(dict(grad, kernel="baseline"))
    # "mma" and "wgmma" pin the dK/dV kernel, and stay.
    assert bundles.spec_of(dict(grad, kernel="mma"))["kernel"] == "mma"
    assert bundles.spec_of(dict(grad, kernel="wgmma"))["kernel"] == "wgmma"
    # "deterministic" only where false, and "dq_reduce" only as "atomic" with
    # it (attn::toJSON's rules: the deterministic backward's specs keep their
    # JSON, and a tuning choice of the fused dQ means nothing without it).
    assert not {"deterministic", "dq_reduce"} & set(spec)
    assert "deterministic" not in bundles.spec_of(dict(grad, deterministic=True))
    nd = bundles.spec_of(dict(grad, deterministic=False))
    assert nd["deterministic"] is False and "dq_reduce" not in nd
    assert bundles.spec_of(dict(grad, deterministic=False, dq_reduce="atomic"))["dq_reduce"] == \
        "atomic"
    assert "dq_reduce" not in bundles.spec_of(dict(grad, deterministic=False, dq_reduce="bulk"))
    assert "dq_reduce" not in bundles.spec_of(dict(grad, dq_reduce="atomic"))


def test_spec_of_paged():
    v = {"op": "paged_attention", "dtype": "f16", "head_dim": 576, "value_head_dim": 512,
         "page_size": 64, "cache_layout": "hnd", "table_dtype": "i64", "mask": "causal",
         "scale": 0.1352, "softcap": 30.0, "sinks": True, "sinks_dtype": "f32", "lse": True,
         "values": "key_prefix"}
    # The lengths in the table's type unless given.
    assert bundles.spec_of(v) == dict(v, lens_dtype="i64", version=2, scale="runtime",
                                      softcap="runtime")
    assert bundles.spec_of(dict(v, specialize=True)) == dict(v, lens_dtype="i64", version=2)
    assert bundles.spec_of(dict(v, lens_dtype="i32"))["lens_dtype"] == "i32"


def test_spec_of_sparse_is_paged():
    """attn.sparse_attention runs on the paged kernels: pages of block_size
    keys, NHD, i32 tables and lengths, no mask (the host folds causality
    into the lengths)."""
    v = {"op": "sparse_attention", "dtype": "bf16", "head_dim": 576, "value_head_dim": 512,
         "block_size": 1, "mask": "causal", "scale": 0.1352, "softcap": None, "sinks": False,
         "lse": True, "values": "key_prefix"}
    assert bundles.spec_of(v) == {
        "op": "paged_attention", "version": 2, "dtype": "bf16", "head_dim": 576,
        "value_head_dim": 512, "page_size": 1, "cache_layout": "nhd", "table_dtype": "i32",
        "lens_dtype": "i32", "mask": "none", "scale": "runtime", "softcap": None,
        "values": "key_prefix", "sinks": False, "lse": True}
    spec = bundles.spec_of(dict(v, block_size=64, mask="none", softcap=30.0, sinks=True,
                                sinks_dtype="f32", values="separate"))
    assert (spec["page_size"], spec["softcap"], spec["sinks_dtype"], spec["values"]) == \
        (64, "runtime", "f32", "separate")
    no_values = dict(v)
    del no_values["values"]
    assert bundles.spec_of(no_values)["values"] == "separate"
    with pytest.raises(ValueError, match="window mask has no GPU kernel"):
        bundles.spec_of(dict(v, mask="window", window_left=3, window_right=0))


def test_spec_of_gated_delta_chunk():
    v = {"op": "gated_delta_rule", "dtype": "bf16", "key_head_dim": 128, "value_head_dim": 64,
         "chunk": 64, "gate_kind": "channel", "gate_dtype": "f32", "beta_dtype": "bf16",
         "qk_l2norm": True, "scale": _SCALE, "initial_state": True}
    assert bundles.spec_of(v) == dict(v, chunk=32, version=2)
    assert bundles.spec_of(dict(v, chunk=16))["chunk"] == 16
    del v["chunk"]
    assert bundles.spec_of(v)["chunk"] == 32  # the op's default, 64, capped


def test_nsa_specs():
    """An NSA variant: its selection kernel's spec (D = Dv; window and page
    size are the branches') and the specs of the branches' kernels."""
    v = {"op": "nsa", "dtype": "bf16", "head_dim": 128, "q_heads": 64, "kv_heads": 4,
         "cmp_block": 32, "cmp_stride": 16, "sel_block": 64, "num_selected": 16,
         "initial_blocks": 1, "local_blocks": 2, "scale": _SCALE, "window": 512,
         "page_size": 32}
    select = {key: val for key, val in v.items() if key not in ("window", "page_size")}
    assert bundles.spec_of(v) == dict(select, value_head_dim=128, version=2)
    specs = bundles.specs_of([v])
    # The selected branch is the nsa spec's own kernel (nsa.attend) for
    # selection blocks of a multiple of 16 keys.
    assert [s["op"] for s in specs] == ["nsa", "attention", "attention", "paged_attention"]
    causal, window, compressed = specs[1:]
    assert causal["mask"] == "causal" and causal["lse"] and causal["layout"] == "bshd"
    assert (window["mask"], window["window_left"], window["window_right"]) == \
        ("window", "runtime", "runtime")
    window = bundles.specs_of([dict(v, specialize=True)])[2]
    assert (window["mask"], window["window_left"], window["window_right"]) == ("window", 511, 0)
    assert (compressed["page_size"], compressed["lse"]) == (32, True)
    # Other selection blocks: the selected branch on the paged kernels.
    specs = bundles.specs_of([dict(v, sel_block=24)])
    assert [s["op"] for s in specs] == ["nsa", "attention", "attention", "paged_attention",
                                        "paged_attention"]
    selected = specs[4]
    assert (selected["page_size"], selected["lse"], selected["mask"]) == (24, False, "none")
    # The selected branch's paged kernel is the sparse attention one.
    sparse = {"op": "sparse_attention", "dtype": "bf16", "head_dim": 128, "value_head_dim": 128,
              "block_size": 24, "mask": "causal", "scale": _SCALE, "softcap": None,
              "sinks": False, "lse": False}
    assert bundles.spec_of(sparse) == selected


def test_spec_of_indexer_and_unknown():
    v = {"op": "lightning_indexer", "dtype": "bf16", "heads": 64, "head_dim": 128,
         "weights_dtype": "f32", "mask": "window", "window_left": 2047, "window_right": 0}
    assert bundles.spec_of(v) == dict(v, version=2)
    with pytest.raises(ValueError, match="no kernel spec for op 'paged_combine'"):
        bundles.spec_of({"op": "paged_combine", "dtype": "bf16"})


def test_every_suite_variant_has_a_spec():
    """The variants of the GPU suite, the benchmarks and the ptxas matrix
    all become specs, one per distinct kernel family instance."""
    import gpu_cases
    import test_ptx_matrix as m
    from attn import bench, bench_gated, bench_paged, bench_sparse
    for variants in (gpu_cases.variants(), bench.variants(), bench_paged.variants(),
                     bench_gated.variants(), bench_sparse.variants(), m.MATRIX,
                     m.PAGED_MATRIX, m.GATED_MATRIX, m.SPARSE_MATRIX):
        specs = bundles.specs_of(variants)
        assert specs
        keys = [json.dumps(s, sort_keys=True) for s in specs]
        assert len(set(keys)) == len(keys)
        for s in specs:
            assert s["version"] == bundles.SPEC_VERSION
            assert set(s) <= set(bundles._SPEC_KEYS[s["op"]]) | {"op", "version"}
    # The dense matrix: one spec per variant (its count of kernels).
    assert len(bundles.specs_of(m.MATRIX)) == len(m.MATRIX)


# A stand-in attn-compile: records its arguments and input, writes one
# bundle named after the spec's op, prints its name.
_FAKE = r'''#!/usr/bin/env python3
import json, os, sys, time
args = sys.argv[1:]
spec = sys.stdin.read()
out = args[args.index("-o") + 1]
log = os.environ["FAKE_LOG"]
with open(os.path.join(log, f"{os.getpid()}.json"), "w") as f:
    json.dump({"args": args, "spec": json.loads(spec)}, f)
s = json.loads(spec)
if s.get("dtype") == "bad":
    sys.stderr.write("attn-compile: bad kernel spec: 'dtype': unknown value\n")
    sys.exit(1)
name = f"k_{s['op']}_{os.getpid()}"
os.makedirs(out, exist_ok=True)
for ext in (".ptx", ".json"):
    open(os.path.join(out, name + ext), "w").close()
print(name)
'''


@pytest.fixture
def fake_tool(tmp_path, monkeypatch):
    tool = tmp_path / "attn-compile"
    tool.write_text(_FAKE.replace("/usr/bin/env python3", sys.executable))
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("FAKE_LOG", str(log))

    def calls():
        return [json.load(open(log / f)) for f in sorted(os.listdir(log))]
    return str(tool), calls


def test_compile_variants_hands_specs_to_attn_compile(fake_tool):
    tool, calls = fake_tool
    nsa = {"op": "nsa", "dtype": "bf16", "head_dim": 128, "q_heads": 64, "kv_heads": 4,
           "cmp_block": 32, "cmp_stride": 16, "sel_block": 64, "num_selected": 16,
           "initial_blocks": 1, "local_blocks": 2, "scale": _SCALE, "window": 512,
           "page_size": 64}
    sparse = {"op": "sparse_attention", "dtype": "bf16", "head_dim": 128, "value_head_dim": 128,
              "block_size": 64, "mask": "causal", "scale": _SCALE, "softcap": None,
              "sinks": False, "lse": False}
    variants = [_dense(), _dense(), dict(_dense(), extra_key=1), nsa, sparse]
    with tempfile.TemporaryDirectory() as out:
        stale = os.path.join(out, "old_baseline.ptx")
        for f in (stale, os.path.join(out, "old_baseline.json"), os.path.join(out, "notes.txt")):
            open(f, "w").close()
        names = bundles.compile_variants(variants, out, "sm_80", attn_compile=tool,
                                         kernel="baseline", extra=["--block-q=64"], jobs=2)
        # Stale bundles are removed, other files kept.
        assert sorted(os.listdir(out)) == sorted(
            ["notes.txt"] + [n + ext for n in names for ext in (".ptx", ".json")])
    got = calls()
    # One process per distinct spec: the dense variant (its copies and the
    # one with a key outside the schema are one spec), the NSA selection (and
    # selected branch) and its three branch kernels, and the sparse
    # variant's paged kernels.
    assert len(got) == len(names) == 6
    for call in got:
        assert call["args"] == ["--spec", "-", "-o", out, "--chip=sm_80", "--kernel=baseline",
                                "--block-q=64"]
        assert call["spec"]["version"] == 2
    specs = sorted(json.dumps(c["spec"], sort_keys=True) for c in got)
    want = sorted(json.dumps(s, sort_keys=True) for s in bundles.specs_of(variants))
    assert specs == want
    assert sorted(c["spec"]["op"] for c in got) == \
        ["attention"] * 3 + ["nsa"] + ["paged_attention"] * 2


def test_compile_variants_errors(fake_tool):
    tool, calls = fake_tool
    with tempfile.TemporaryDirectory() as out:
        with pytest.raises(RuntimeError, match="(?s)attn-compile failed on the spec .*unknown value"):
            bundles.compile_variants([_dense(dtype="bad")], out, attn_compile=tool)
        # A variant with no spec fails before anything runs or is removed.
        open(os.path.join(out, "keep.ptx"), "w").close()
        with pytest.raises(ValueError, match="no kernel spec"):
            bundles.compile_variants([_dense(), {"op": "nope"}], out, attn_compile=tool)
        assert os.listdir(out) == ["keep.ptx"]
    assert len(calls()) == 1


def test_cli_variant_and_options(fake_tool, tmp_path, monkeypatch, capsys):
    tool, calls = fake_tool
    monkeypatch.setenv("ATTN_COMPILE", tool)
    out = str(tmp_path / "out")
    bundles.main(["-o", out, "--chip", "sm_80", "--kernel", "mma", "--block-q", "64",
                  "--compile-arg=--no-fuse", "--variant", json.dumps(_dense()),
                  "--variant", json.dumps(_dense(head_dim=64, value_head_dim=64))])
    assert capsys.readouterr().out == f"2 bundles in {out}\n"
    got = calls()
    assert sorted(c["spec"]["head_dim"] for c in got) == [64, 128]
    # Only the options given reach attn-compile (the rest are its defaults).
    for c in got:
        assert c["args"] == ["--spec", "-", "-o", out, "--chip=sm_80", "--kernel=mma",
                             "--block-q=64", "--no-fuse"]


def test_cli_spec_is_handed_over_as_it_is(fake_tool, tmp_path, monkeypatch):
    tool, calls = fake_tool
    monkeypatch.setenv("ATTN_COMPILE", tool)
    # Even a spec of another schema version: attn-compile is the judge.
    specs = [dict(bundles.spec_of(_dense()), version=2),
             bundles.spec_of({"op": "lightning_indexer", "dtype": "bf16", "heads": 64,
                              "head_dim": 128, "weights_dtype": "f32", "mask": "causal"})]
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(specs)))
    bundles.main(["-o", str(tmp_path), "--spec", "-"])
    assert sorted((c["spec"] for c in calls()), key=lambda s: s["op"]) == specs
    path = tmp_path / "one.json"
    path.write_text(json.dumps(specs[1]))
    bundles.main(["-o", str(tmp_path), "--spec", str(path)])
    assert [c["spec"] for c in calls()].count(specs[1]) == 2 and len(calls()) == 3


@pytest.mark.parametrize("form", ["json", "py"])
def test_cli_variants_from(form, fake_tool, tmp_path, monkeypatch):
    tool, calls = fake_tool
    monkeypatch.setenv("ATTN_COMPILE", tool)
    variants = [_dense(), _dense(mask="causal")]
    path = tmp_path / f"variants.{form}"
    path.write_text(json.dumps(variants) if form == "json"
                    else f"def variants():\n    return {variants!r}\n")
    bundles.main(["-o", str(tmp_path / "out"), "--variants-from", str(path)])
    assert sorted(json.dumps(c["spec"], sort_keys=True) for c in calls()) == \
        sorted(json.dumps(s, sort_keys=True) for s in bundles.specs_of(variants))


@pytest.mark.parametrize("flag", ["--gpu-suite", "--bench", "--paged-bench", "--gated-bench",
                                  "--sparse-bench", "--values-bench"])
def test_cli_named_sets(flag, monkeypatch, tmp_path):
    """Each named set compiles its module's variants; the GPU suite's are
    read from the checkout's tests/gpu_cases.py by path (sys.path is left
    as it was)."""
    import gpu_cases
    from attn import bench, bench_gated, bench_paged, bench_sparse, bench_values
    want = {"--gpu-suite": gpu_cases, "--bench": bench, "--paged-bench": bench_paged,
            "--gated-bench": bench_gated, "--sparse-bench": bench_sparse,
            "--values-bench": bench_values}[flag].variants()
    seen = {}
    monkeypatch.setattr(bundles, "compile_variants",
                        lambda variants, *args, **kw: seen.update(variants=variants, kw=kw) or [])
    path = list(sys.path)
    bundles.main(["-o", str(tmp_path), flag])
    assert sys.path == path
    assert seen["variants"] == want
    assert seen["kw"]["jobs"] == (1 if flag == "--bench" else None)


@pytest.mark.parametrize("flag", ["--gpu-suite", "--bench"])
def test_cli_named_sets_leave_fp8_to_sm90a(flag, monkeypatch, tmp_path, capsys):
    """For another chip a named set leaves its FP8 variants out (their kernel
    is sm_90a's) and says so; the rest compiles."""
    seen = {}
    monkeypatch.setattr(bundles, "compile_variants",
                        lambda variants, *args, **kw: seen.update(variants=variants) or [])
    bundles.main(["-o", str(tmp_path), flag])
    assert any(v.get("dtype") == "f8e4m3" for v in seen["variants"])
    bundles.main(["-o", str(tmp_path), flag, "--chip", "sm_80"])
    assert seen["variants"] and not any(v.get("dtype") == "f8e4m3" for v in seen["variants"])
    assert "FP8 variants left out" in capsys.readouterr().err


def test_cli_specialize(fake_tool, tmp_path, monkeypatch, capsys):
    """--specialize compiles the values in: the specs carry numbers where the
    default specs say "runtime"; a spec file is refused (it says its values
    itself)."""
    tool, calls = fake_tool
    monkeypatch.setenv("ATTN_COMPILE", tool)
    window = _dense(mask="window", window_left=64, window_right=0, softcap=30.0)
    bundles.main(["-o", str(tmp_path / "rt"), "--variant", json.dumps(window)])
    bundles.main(["-o", str(tmp_path / "sp"), "--variant", json.dumps(window), "--specialize"])
    runtime, specialized = (c["spec"] for c in calls())
    assert runtime == bundles.spec_of(window)
    assert specialized == bundles.spec_of(dict(window, specialize=True))
    assert "runtime" in json.dumps(runtime) and "runtime" not in json.dumps(specialized)
    assert np.float32(specialized["scale"]) == np.float32(window["scale"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(runtime)))
    with pytest.raises(SystemExit, match="--specialize is for variants"):
        bundles.main(["-o", str(tmp_path), "--spec", "-", "--specialize"])
    assert len(calls()) == 2


def test_cli_errors(fake_tool, tmp_path, monkeypatch, capsys):
    tool, calls = fake_tool
    with pytest.raises(SystemExit) as e:
        bundles.main(["-o", str(tmp_path), "--variant", "[1, 2]"])
    assert e.value.code == 2 and "expected a JSON object" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bundles.main(["-o", str(tmp_path), "--variant", "{}", "--bench"])
    assert e.value.code == 2 and "not allowed with" in capsys.readouterr().err
    monkeypatch.setenv("ATTN_COMPILE", tool)
    with pytest.raises(SystemExit, match="(?s)attn-compile failed on the spec .*unknown value"):
        bundles.main(["-o", str(tmp_path), "--variant", json.dumps(_dense(dtype="bad"))])
    monkeypatch.setenv("ATTN_COMPILE", str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match="ATTN_COMPILE=.*missing is not an executable file; "
                                         "set ATTN_COMPILE"):
        bundles.main(["-o", str(tmp_path), "--variant", json.dumps(_dense())])
    assert len(calls()) == 1


def test_spec_of_fp8_attention():
    # FP8's keys pass through for f8e4m3 variants only, as attn::toJSON
    # writes them (docs/kernel-spec.md).
    v = _dense(dtype="f8e4m3", out_dtype="bf16", descale="head", specialize=True)
    spec = bundles.spec_of(v)
    assert (spec["dtype"], spec["out_dtype"], spec["descale"]) == ("f8e4m3", "bf16", "head")
    spec = bundles.spec_of(_dense(out_dtype="f32", descale="tensor"))
    assert not {"out_dtype", "descale"} & set(spec)


def test_gpu_fp8_needs_descales():
    """FP8 calls take three descales of one shape, [] or [B, Hkv], and an
    output dtype of bf16, f16 or f32 (the GPU tests run the kernels)."""
    import types
    from attn import gpu
    t = types.SimpleNamespace(dtype="torch.float8_e4m3fn", shape=(1, 4, 8, 128))
    assert gpu._dense_sizes(t, t, t, "bhsd")[0] == "f8e4m3"
    with pytest.raises(ValueError, match="needs q_descale, k_descale and v_descale"):
        gpu._fp8_descales((None, None, None), None, "f8e4m3", 1, 4)
    with pytest.raises(ValueError, match="q_descale is for FP8 inputs"):
        gpu._fp8_descales((None, None, None), None, "bf16", 1, 4)
