# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Every variant of the matrix compiles to PTX that ptxas accepts, for sm_80
and sm_90a (no GPU needed). Skips when attn-compile or ptxas is missing."""

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import bundles, cpu  # noqa: E402

PTXAS = os.environ.get("PTXAS") or shutil.which("ptxas") or "/usr/local/cuda/bin/ptxas"
pytestmark = pytest.mark.skipif(
    cpu.tools() is None or not os.path.exists(PTXAS),
    reason="attn-compile or ptxas (CUDA toolkit) not found")


def variant(dtype="bf16", d=128, dv=None, layout="bhsd", mask="none", window=(0, 0),
            softcap=None, bias=None, sinks=False, lse=False, scale=None):
    v = {"dtype": dtype, "head_dim": d, "value_head_dim": dv or d, "layout": layout,
         "mask": mask, "scale": scale or 1 / math.sqrt(d), "softcap": softcap,
         "bias": bias is not None, "sinks": sinks, "lse": lse}
    if mask == "window":
        v["window_left"], v["window_right"] = window
    if bias is not None:
        v["bias_broadcast"], v["bias_dtype"] = list(bias), dtype
    if sinks:
        v["sinks_dtype"] = "f32"
    return v


# MHA/MQA/GQA share a kernel (head counts are run-time sizes); the matrix
# covers every compile-time axis.
MATRIX = (
    [variant(dtype=t, d=d) for t, d in itertools.product(["f16", "bf16"], [64, 96, 128, 256])]
    + [variant(d=192, dv=128, mask="causal", scale=0.1352),
       variant(mask="causal"), variant(dtype="f16", mask="causal", lse=True),
       variant(d=64, mask="causal", layout="bshd", sinks=True),
       variant(mask="window", window=(127, 0)), variant(mask="window", window=(64, 16), layout="bshd"),
       variant(softcap=50.0, mask="causal"), variant(bias=(False, True, False, False)),
       variant(dtype="f16", bias=(True, True, False, False), mask="causal"),
       variant(sinks=True, mask="window", window=(127, 0), lse=True),
       variant(dtype="f32", d=64)]
)


@pytest.mark.parametrize("kernel", ["auto", "baseline"])
@pytest.mark.parametrize("chip", ["sm_80", "sm_90a"])
def test_variant_matrix_ptxas(chip, kernel):
    with tempfile.TemporaryDirectory() as out:
        written = bundles.compile_variants(MATRIX, out, chip, kernel=kernel)
        ptx = sorted(f for f in os.listdir(out) if f.endswith(".ptx"))
        # sm_90a's D = Dv f16/bf16 variants without bias or softcap also get
        # length alternatives (docs/design-length-choice.md): at 128, 176
        # keys a step from 8192 keys non-causal, one warpgroup of 64 rows
        # and 64 keys a step through 2048 keys causal; at 64, 64 keys a step
        # (three blocks an SM) below 1792 keys causal.
        def alternative(v, mask, d):
            return (chip == "sm_90a" and kernel == "auto" and v["head_dim"] == d
                    and v["value_head_dim"] == d and v["mask"] == mask
                    and v["dtype"] in ("f16", "bf16") and not v["bias"] and v["softcap"] is None)
        wide = sum(alternative(v, "none", 128) for v in MATRIX)
        short = sum(alternative(v, "causal", 128) for v in MATRIX)
        trio = sum(alternative(v, "causal", 64) for v in MATRIX)
        assert len(ptx) == len(MATRIX) + wide + short + trio, \
            f"{len(ptx)} kernels for {len(MATRIX)} variants"
        assert sum(f.endswith("_wgmma_kv176_pSk8192.ptx") for f in ptx) == wide
        assert sum(f.endswith("_wgmma_q64_kv64_pSk0to2049.ptx") for f in ptx) == short
        assert sum(f.endswith("_wgmma_q64_kv64_pSk0to1792.ptx") for f in ptx) == trio
        if chip == "sm_90a" and kernel == "auto":
            assert wide and short and trio
        for f in ptx:
            r = subprocess.run([PTXAS, f"-arch={chip}", os.path.join(out, f), "-o", os.devnull],
                               capture_output=True, text=True)
            assert r.returncode == 0, f"ptxas rejected {f}:\n{r.stderr}"
            text = open(os.path.join(out, f)).read()
            assert f".target {chip}" in text
            # The tensor-core kernels use cp.async, ldmatrix and mma.sync.
            if f.endswith("_mma.ptx"):
                assert "ldmatrix.sync.aligned" in text and "mma.sync.aligned.m16n8k16" in text
                assert "cp.async" in text
            # The sm_90a kernels: TMA on mbarriers and wgmma for both products.
            if f.endswith(("_wgmma.ptx", "_wgmma_kv176_pSk8192.ptx", "_wgmma_q64_kv64_pSk0to2049.ptx",
                           "_wgmma_q64_kv64_pSk0to1792.ptx")):
                assert chip == "sm_90a"
                assert "cp.async.bulk.tensor.4d" in text and "mbarrier" in text
                assert text.count("wgmma.mma_async.sync.aligned.m64n") >= 2
                # Head dim 64 (D = Dv, no bias) and the 64-row causal
                # alternative: one consumer warpgroup, two blocks an SM (128
                # registers a thread at launch, 232 for the consumers after
                # setmaxnreg), without spills; at head dim 64 with 64 keys a
                # step three blocks (80 at launch, 136). Otherwise two
                # consumer warpgroups, one block an SM, 240.
                solo = ("_d64_dv64_" in f and "_bias" not in f) or "_q64_" in f
                trio = f.endswith("_pSk0to1792.ptx")
                threads, regs = (256, 136 if trio else 232) if solo else (384, 240)
                assert f".maxntid {threads}, 1, 1" in text, f
                assert (".minnctapersm 3" in text) == trio, f
                assert (".minnctapersm 2" in text) == (solo and not trio), f
                assert re.search(rf"setmaxnreg\.inc\.sync\.aligned\.u32\s+{regs};", text), f
                if solo:
                    v = subprocess.run([PTXAS, "-arch=sm_90a", "-v", os.path.join(out, f), "-o",
                                        os.devnull], capture_output=True, text=True).stderr
                    assert "0 bytes spill stores" in v and "C75" not in v, f"{f}:\n{v}"
        if kernel == "auto":
            assert any(f.endswith("_mma.ptx") for f in ptx)
            assert any(f.endswith("_wgmma.ptx") for f in ptx) == (chip == "sm_90a")


# The sm_90a kernel's persistent schedule ("persistent": true; blocks walk
# the query tiles), head dims up to 128.
PERSISTENT_MATRIX = (
    [variant(dtype=t, d=d) for t, d in itertools.product(["f16", "bf16"], [64, 128])]
    + [variant(mask="causal"), variant(d=64, mask="causal"), variant(d=64, dv=128, mask="causal"),
       variant(mask="window", window=(127, 0), layout="bshd", sinks=True, lse=True),
       variant(softcap=50.0, mask="causal"), variant(bias=(False, True, False, False)),
       variant(dtype="f16", d=64, bias=(True, True, False, False), mask="causal")]
)


def test_persistent_matrix_ptxas():
    with tempfile.TemporaryDirectory() as out:
        specs = [dict(s, persistent=True) for s in bundles.specs_of(PERSISTENT_MATRIX)]
        bundles.compile_specs(specs, out, "sm_90a")
        ptx = sorted(f for f in os.listdir(out) if f.endswith(".ptx"))
        assert len(ptx) == len(PERSISTENT_MATRIX) and all(
            f.endswith("_wgmma_persistent.ptx") for f in ptx), ptx
        report = []
        for f in ptx:
            path = os.path.join(out, f)
            r = subprocess.run([PTXAS, "-arch=sm_90a", "-v", path, "-o", os.devnull],
                               capture_output=True, text=True)
            assert r.returncode == 0, f"ptxas rejected {f}:\n{r.stderr}"
            text = open(path).read()
            manifest = json.load(open(path[:-4] + ".json"))
            # One consumer warpgroup (D = Dv = 64, no bias): two blocks an SM.
            solo = "_d64_dv64_" in f and "_bias" not in f
            assert manifest["grid"] == [{"min": [
                {"mul": [{"ceil_div": ["Sq", 64 if solo else 128]}, "Hq", "B"]},
                {"mul": ["SMs", 2]} if solo else "SMs"]}, 1, 1], f
            assert manifest["tile"]["persistent"] is True
            # The producer walks the tiles on 40 registers; the consumers get
            # the rest (WgmmaKernel.cpp, kPersistentProducerRegisters).
            assert re.search(r"setmaxnreg\.dec\.sync\.aligned\.u32\s+40;", text), f
            assert re.search(rf"setmaxnreg\.inc\.sync\.aligned\.u32\s+{216 if solo else 232};",
                             text), f
            assert (".minnctapersm 2" in text) == solo, f
            assert "%nctaid.x" in text and "cp.async.bulk.tensor.4d" in text
            spilled = int(re.search(r"(\d+) bytes spill stores", r.stderr).group(1))
            report.append(f"{f}: {spilled} bytes spilled")
            # Without a band or a bias none; with them a few words (8-32
            # bytes with ptxas 12.x: the causal and window tile arithmetic,
            # the bias' offsets).
            extra = "_causal_" in f or "_window_" in f or "_bias" in f
            assert spilled <= (32 if extra else 0), "\n".join(report)


def grad(kernel=None, **kw):
    """An attention_grad variant: the forward's keys but lse (and "kernel"
    where given: "mma" or "wgmma" pins the dK/dV kernel)."""
    v = variant(**kw)
    del v["lse"]
    if kernel:
        v["kernel"] = kernel
    return dict(v, op="attention_grad")


# The backward: the tensor-core dQ and dK/dV kernels (f16/bf16, head dims
# multiples of 16 up to 128: masks, softcap, bias, sinks, bshd, D != Dv, the
# unswizzled 96) and the thread-per-row ones they leave (f32, 192/128, 256).
GRAD_MATRIX = (
    [grad(dtype=t, d=d) for t, d in itertools.product(["f16", "bf16"], [64, 128])]
    + [grad(mask="causal"), grad(dtype="f16", d=64, mask="causal"),
       grad(mask="window", window=(127, 0)), grad(d=64, mask="window", window=(31, 8), layout="bshd"),
       grad(softcap=30.0, mask="causal"), grad(bias=(False, True, False, False)),
       grad(dtype="f16", d=128, dv=64, bias=(True, True, False, False), mask="causal"),
       grad(dtype="f16", d=96), grad(dtype="f16", d=64, sinks=True, mask="window", window=(40, 0))]
)
GRAD_FALLBACK = [grad(dtype="f32", d=64), grad(d=192, dv=128, mask="causal", scale=0.1352),
                 grad(d=256)]


@pytest.mark.parametrize("chip", ["sm_80", "sm_90a"])
def test_grad_matrix_ptxas(chip):
    # On sm_90a "auto" puts dK/dV of head dims 64 and 128 on the wgmma
    # kernel (test_grad_wgmma_matrix_ptxas): pin mma.sync there.
    # Head dims 192 and 256 are wgmma's there too: only f32 falls back.
    matrix = GRAD_MATRIX if chip == "sm_80" else [dict(v, kernel="mma") for v in GRAD_MATRIX]
    fallback = GRAD_FALLBACK if chip == "sm_80" else GRAD_FALLBACK[:1]
    with tempfile.TemporaryDirectory() as out:
        bundles.compile_variants(matrix + fallback, out, chip)
        ptx = sorted(f for f in os.listdir(out) if f.endswith(".ptx"))
        mma = [f for f in ptx if f.endswith("_mma.ptx")]
        assert sum(f.endswith("_bwd_dq_mma.ptx") for f in ptx) == len(GRAD_MATRIX), ptx
        assert sum(f.endswith("_bwd_dkdv_mma.ptx") for f in ptx) == len(GRAD_MATRIX), ptx
        assert sum(f.endswith(("_bwd_dq.ptx", "_bwd_dkdv.ptx")) for f in ptx) == 2 * len(fallback)
        assert sum(f.endswith("_bwd_dsinks.ptx") for f in ptx) == 1, ptx
        for f in ptx:
            r = subprocess.run([PTXAS, f"-arch={chip}", "-v", os.path.join(out, f), "-o",
                                os.devnull], capture_output=True, text=True)
            assert r.returncode == 0, f"ptxas rejected {f}:\n{r.stderr}"
            if f not in mma:
                continue
            # At most a few words of spills (dK and dV at head dim 128 fill
            # the registers).
            spilled = re.search(r"(\d+) bytes spill stores", r.stderr)
            assert spilled and int(spilled.group(1)) <= 128, f"{f} spills:\n{r.stderr}"
            text = open(os.path.join(out, f)).read()
            assert f".target {chip}" in text
            assert re.search(r"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.(bf16|f16)", text), f
            assert "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in text, f
            assert "cp.async.cg.shared.global" in text, f
            # The dK/dV kernel's LSE and Delta rows: 4-byte copies.
            if "_dkdv_" in f:
                assert "cp.async.ca.shared.global" in text, f


# The sm_90a dQ and dK/dV kernels (pinned: kernel=wgmma): head
# dims 64 and 128 (D != Dv too), f16/bf16, causal or not, windows, softcap,
# bias, sinks, bshd; DeepSeek's 192/128 and 256 (dK and dV in blocks of
# their own, tiles of 32 rows). GQA is a run-time size.
GRAD_WGMMA_MATRIX = (
    [grad(kernel="wgmma", dtype=t, d=d, mask=m)
     for t, d, m in itertools.product(["f16", "bf16"], [64, 128], ["none", "causal"])]
    + [grad(kernel="wgmma", mask="window", window=(127, 0)),
       grad(kernel="wgmma", dtype="f16", d=64, mask="window", window=(31, 8), layout="bshd"),
       grad(kernel="wgmma", softcap=30.0, mask="causal"),
       grad(kernel="wgmma", bias=(False, True, False, False)),
       grad(kernel="wgmma", dtype="f16", d=128, dv=64, bias=(True, True, False, False),
            mask="causal"),
       grad(kernel="wgmma", d=64, dv=128, sinks=True, mask="window", window=(40, 0)),
       grad(kernel="wgmma", d=192, dv=128, mask="causal", scale=0.1352),
       grad(kernel="wgmma", d=192, dv=128, softcap=30.0, mask="causal", scale=0.1352),
       grad(kernel="wgmma", dtype="f16", d=256, mask="window", window=(100, 0)),
       grad(kernel="wgmma", d=256, dv=128, bias=(False, True, False, False), sinks=True,
            mask="causal"),
       grad(kernel="wgmma", d=128, dv=256, layout="bshd")]
)


def test_grad_wgmma_matrix_ptxas():
    with tempfile.TemporaryDirectory() as out:
        bundles.compile_variants(GRAD_WGMMA_MATRIX, out, "sm_90a")
        ptx = sorted(f for f in os.listdir(out) if f.endswith(".ptx"))
        dkdv = [f for f in ptx if f.endswith("_wgmma_bwd_dkdv_wgmma.ptx")]
        dq = [f for f in ptx if f.endswith("_wgmma_bwd_dq_wgmma.ptx")]
        assert len(dkdv) == len(GRAD_WGMMA_MATRIX), ptx
        assert len(dq) == len(GRAD_WGMMA_MATRIX), ptx
        report = []
        for f in ptx:
            r = subprocess.run([PTXAS, "-arch=sm_90a", "-v", os.path.join(out, f), "-o",
                                os.devnull], capture_output=True, text=True)
            assert r.returncode == 0, f"ptxas rejected {f}:\n{r.stderr}"
            if f not in dkdv + dq:
                continue
            # 384 threads at one block an SM: 168 registers, which setmaxnreg
            # deals out (24 to the producer, 240 to the consumers). No spills
            # but in dK/dV at head dim 128 with a window (16 bytes), a bias
            # (48: its per-element loads) or softcap (224: the tanh of every
            # logit stays live until dS), and in dQ at head dim 256 with a
            # bias (16). DeepSeek's 192/128 dK/dV keeps both accumulators of a
            # consumer's 64 keys (160 registers) beside Sᵀ and dPᵀ: 4 bytes
            # causal, taken for 1.22x the speed of the split blocks (H200,
            # docs/bench/2026-12-05-h200-stop47). The deterministic d128 causal
            # dK/dV: 8 bytes since each consumer thread releases its stage
            # (9a84061, which removed racecheck's reports and ran 1.00-1.05x
            # the spill-free build's speed there, H100).
            spilled = int(re.search(r"(\d+) bytes spill stores", r.stderr).group(1))
            regs = int(re.search(r"Used (\d+) registers", r.stderr).group(1))
            report.append(f"{f}: {regs} registers, {spilled} bytes spilled")
            assert regs <= 168, f"{f}:\n{r.stderr}"
            extra = any(x in f for x in ("_cap", "_bias", "_window"))
            few = f in dkdv and ("_d192_dv128_" in f or "_d128_dv128_bhsd_causal_" in f)
            assert spilled <= (256 if extra else 8 if few else 0), f"{f} spills:\n{r.stderr}"
            text = open(os.path.join(out, f)).read()
            assert ".maxntid 384, 1, 1" in text and ".minnctapersm 1" in text, f
            assert re.search(r"setmaxnreg\.dec\.sync\.aligned\.u32\s+24;", text), f
            assert re.search(r"setmaxnreg\.inc\.sync\.aligned\.u32\s+240;", text), f
            assert "cp.async.bulk.tensor.4d" in text and "mbarrier.try_wait.parity" in text, f
            # Sᵀ and dPᵀ (S and dP in dQ) by descriptors (m64n64; m64n32
            # past head dim 128), dV and dK (dQ) with A from registers
            # (m64nDv, m64nD; trans-b: dO and Q, K in dQ, MN-major).
            n = 32 if max(int(x) for x in re.findall(r"_dv?(\d+)", f)) > 128 else 64
            assert re.search(rf"wgmma\.mma_async\.sync\.aligned\.m64n{n}k16\.f32\.(bf16|f16)",
                             text), f
            assert re.search(r"\{%r\d+, %r\d+, %r\d+, %r\d+\}, %rd\d+, p, 1, 1, 1;", text), f
        print("\n".join(report))


# The non-deterministic backward ("deterministic": false) on sm_90a: head
# dims 64 and 128 get the fused set (prep, dK/dV with dQ's atomic adds,
# convert); 192/128 and 256 keep the deterministic kernels under its "_nd_"
# names. GQA is a run-time size.
GRAD_FUSED_MATRIX = (
    [dict(grad(dtype=t, d=d, mask=m), deterministic=False)
     for t, d, m in itertools.product(["f16", "bf16"], [64, 128], ["none", "causal"])]
    + [dict(grad(**kw), deterministic=False) for kw in (
        dict(mask="window", window=(127, 0)),
        dict(dtype="f16", d=64, mask="window", window=(31, 8), layout="bshd"),
        dict(softcap=30.0, mask="causal"),
        dict(bias=(False, True, False, False)),
        dict(dtype="f16", d=128, dv=64, mask="causal"),
        dict(d=64, dv=128, sinks=True, mask="window", window=(40, 0)))]
)
GRAD_FUSED_FALLBACK = [dict(grad(d=192, dv=128, mask="causal", scale=0.1352), deterministic=False),
                       dict(grad(dtype="f16", d=256), deterministic=False)]
# The same fused set with dQ added by f32 atomics ("dq_reduce": "atomic").
GRAD_FUSED_ATOMIC = [dict(v, dq_reduce="atomic") for v in GRAD_FUSED_MATRIX]


def test_grad_fused_dq_ptxas():
    with tempfile.TemporaryDirectory() as out:
        bundles.compile_variants(GRAD_FUSED_MATRIX + GRAD_FUSED_FALLBACK + GRAD_FUSED_ATOMIC, out,
                                 "sm_90a")
        ptx = sorted(f for f in os.listdir(out) if f.endswith(".ptx"))
        assert all("_bwd_nd_" in f for f in ptx), ptx
        fused = [f for f in ptx if f.endswith("_dkdv_dq_wgmma.ptx")]
        assert sum("_bwd_nd_atomic_" in f for f in fused) == len(GRAD_FUSED_ATOMIC), ptx
        assert len(fused) == len(GRAD_FUSED_MATRIX) + len(GRAD_FUSED_ATOMIC), ptx
        for suffix in ("prep.ptx", "dq_convert.ptx"):
            assert sum(f.endswith("_bwd_nd_" + suffix) for f in ptx) == len(GRAD_FUSED_MATRIX), ptx
            assert sum(f.endswith("_bwd_nd_atomic_" + suffix) for f in ptx) == len(
                GRAD_FUSED_ATOMIC), ptx
        assert sum(f.endswith("_bwd_nd_dq_wgmma.ptx") for f in ptx) == len(GRAD_FUSED_FALLBACK)
        steps = {}
        for f in os.listdir(out):
            if f.endswith(".json"):
                m = json.load(open(os.path.join(out, f)))
                steps.setdefault(json.dumps(m["variant"], sort_keys=True), {})[m["step"]] = \
                    m["kernel"]
        fused_steps = {0: "attention_grad.prep", 1: "attention_grad.dkdv_dq",
                       2: "attention_grad.dq_convert"}
        assert sum(s in (fused_steps, {**fused_steps, 3: "attention_grad.dsinks"})
                   for s in steps.values()) == len(GRAD_FUSED_MATRIX) + len(GRAD_FUSED_ATOMIC), \
            steps
        report = []
        for f in ptx:
            r = subprocess.run([PTXAS, "-arch=sm_90a", "-v", os.path.join(out, f), "-o",
                                os.devnull], capture_output=True, text=True)
            assert r.returncode == 0, f"ptxas rejected {f}:\n{r.stderr}"
            spilled = int(re.search(r"(\d+) bytes spill stores", r.stderr).group(1))
            report.append(f"{f}: {spilled} bytes spilled")
            if f not in fused:
                assert spilled == 0 or "_dkdv_" in f, f"{f} spills:\n{r.stderr}"
                continue
            # dK, dV and dQ's share at head dim 128 fill the consumers'
            # 240 registers: a few words spill there (20 bytes with the bulk
            # reduction since its statistics come by bulk copy, 2026-12-05;
            # 40-44 with atomics, on 2026-12-04; with a window, a
            # bias or softcap 28-276, where the deterministic dK/dV kernel
            # spills 16-224), none at 64.
            d = int(re.search(r"_d(\d+)_", f).group(1))
            extra = any(x in f for x in ("_cap", "_bias", "_window"))
            assert spilled <= (0 if d == 64 else 320 if extra else 64), \
                f"{f} spills:\n{r.stderr}"
            # No wgmma serialized: ptxas serializes every wgmma of a kernel
            # (C7514, C7512) where an accumulator is read in flight or the
            # registers run short, as two ways of issuing dQ's share in the
            # next step did (docs/bench/2026-12-05-h100-stop48-dq-rotate).
            assert "C75" not in r.stderr, f"{f}: ptxas serialized wgmma:\n{r.stderr}"
            text = open(os.path.join(out, f)).read()
            # dS staged for dQ (4-byte shared stores, the proxy fence, the
            # 256 consumers' barrier), dK with dSᵀ from shared memory
            # (K-major A, Q MN-major), dQ's share with both operands MN-major
            # (trans-a and trans-b), 32 atomic adds a thread.
            assert "fence.proxy.async.shared::cta;" in text, f
            assert re.search(r"bar\.sync\s+3, 256;", text), f
            assert re.search(r"wgmma\.mma_async\.sync\.aligned\.m64n64k16\.f32\.(bf16|f16)\.(bf16|f16)\s+"
                             r"\{[^}]*\}, %rd\d+, %rd\d+, p, 1,\s+1, 1,\s+1;", text), f
            # dQ's shares: 32 f32 atomics a thread, or (the default) staged
            # in shared memory by tile parity and added by the producer's
            # bulk reductions, two a tile, once they have been read
            # (wait_group.read) the loader may refill.
            if "_bwd_nd_atomic_" in f:
                assert text.count("atom.global.add.f32") == 32, f
                assert "cp.reduce.async.bulk" not in text, f
            else:
                assert "atom.global" not in text, f
                assert text.count("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32"
                                  ) == 2, f
                assert "cp.async.bulk.commit_group;" in text, f
                assert re.search(r"cp\.async\.bulk\.wait_group\.read\s+0;", text), f
        print("\n".join(report))


def paged(dtype="bf16", d=128, dv=None, page=16, layout="nhd", mask="causal", window=(0, 0),
          softcap=None, sinks=False, lse=False, table="i32", scale=None, values="separate"):
    v = {"op": "paged_attention", "dtype": dtype, "head_dim": d, "value_head_dim": dv or d,
         "page_size": page, "cache_layout": layout, "table_dtype": table, "mask": mask,
         "scale": scale or 1 / math.sqrt(d), "softcap": softcap, "sinks": sinks, "lse": lse,
         "values": values}
    if mask == "window":
        v["window_left"], v["window_right"] = window
    if sinks:
        v["sinks_dtype"] = "f32"
    return v


# The paged decode kernels: page sizes (power of two or not), both cache
# layouts, head dims, masks, softcap, sinks + LSE, i64 tables, MLA's 576/512
# with a separate value cache (the general kernel's wide tiling) and with the
# values in the key rows (the latent kernel: one split kernel per row-tile
# size).
PAGED_MATRIX = [
    paged(), paged(page=1), paged(dtype="f16", page=61, layout="hnd"), paged(page=64, table="i64"),
    paged(d=64, mask="none"), paged(d=256, page=128), paged(mask="window", window=(255, 0), softcap=30.0),
    paged(dtype="f16", sinks=True, lse=True), paged(d=96, page=256, mask="none"),
    paged(d=576, dv=512, page=64, mask="none", scale=0.1352),
    paged(d=576, dv=512, page=64, mask="none", scale=0.1352, values="key_prefix"),  # DeepSeek MLA
    paged(dtype="f16", d=288, dv=256, page=61, layout="hnd", mask="window", window=(300, 0),
          softcap=30.0, sinks=True, lse=True, values="key_prefix"),
    # DeepSeek Sparse Attention (gpu.sparse_attention): the latent kernel
    # over compacted token index lists, pages of one key.
    paged(d=576, dv=512, page=1, mask="none", scale=0.1352, values="key_prefix"),
]
LATENT_ROW_TILES = 2  # split kernels per latent variant (16 and 64 rows)


@pytest.mark.parametrize("chip", ["sm_80", "sm_90a"])
def test_paged_matrix_ptxas(chip):
    with tempfile.TemporaryDirectory() as out:
        bundles.compile_variants(PAGED_MATRIX, out, chip)
        ptx = sorted(f for f in os.listdir(out) if f.endswith(".ptx"))
        split = [f for f in ptx if not f.startswith("attn_paged_combine")]
        # On sm_90a the latent variants whose head dims are whole 64-column
        # panels have one split kernel, on wgmma.
        wgmma = [f for f in split if "_vk_wg_r64" in f]
        assert len(split) == sum(LATENT_ROW_TILES if v["values"] == "key_prefix" else 1
                                 for v in PAGED_MATRIX) - len(wgmma), ptx
        assert sum("_vk_r" in f for f in split) == LATENT_ROW_TILES * (3 - len(wgmma)), ptx
        assert wgmma == ([] if chip == "sm_80" else
                         ["attn_paged_bf16_d576_dv512_nhd_p1_none_vk_wg_r64.ptx",
                          "attn_paged_bf16_d576_dv512_nhd_p64_none_vk_wg_r64.ptx"]), ptx
        assert any(f.startswith("attn_paged_combine") for f in ptx)
        for f in ptx:
            r = subprocess.run([PTXAS, f"-arch={chip}", os.path.join(out, f), "-o", os.devnull],
                               capture_output=True, text=True)
            assert r.returncode == 0, f"ptxas rejected {f}:\n{r.stderr}"
        for f in split:
            text = open(os.path.join(out, f)).read()
            assert "cp.async.cg.shared.global" in text
            if f in wgmma:
                assert "wgmma.mma_async.sync.aligned.m64n64k16" in text
                assert "cp.async.mbarrier.arrive.noinc" in text
                # ptxas keeps the MMAs of a group in flight (it serializes
                # them, and says so, where other code touches their
                # registers or branches inside a group).
                r = subprocess.run([PTXAS, f"-arch={chip}", "-v", os.path.join(out, f), "-o",
                                    os.devnull], capture_output=True, text=True)
                assert "are serialized" not in r.stderr, r.stderr
            else:
                assert "mma.sync.aligned.m16n8k16" in text and "ldmatrix.sync.aligned" in text


def gated(dtype="bf16", d=128, dv=None, gate="head", l2norm=True, init=False, chunk=64,
          gate_dtype="f32", scale=None):
    return {"op": "gated_delta_rule", "dtype": dtype, "key_head_dim": d, "value_head_dim": dv or d,
            "chunk": chunk, "gate_kind": gate, "gate_dtype": gate_dtype, "beta_dtype": "f32",
            "qk_l2norm": l2norm, "scale": scale or 1 / math.sqrt(d), "initial_state": init}


# The gated delta kernels: per-head and per-channel gates, head dims 64, 100,
# 128 and unequal key/value dims, initial state, f16/bf16/f32, gates in the
# input type, chunks of 16..64.
GATED_MATRIX = [
    gated(), gated(gate="channel", init=True), gated(dtype="f16", d=64, l2norm=False),
    gated(d=100, init=True, gate_dtype="bf16"), gated(dtype="f32", d=64, dv=128, chunk=32),
    gated(dtype="f16", d=128, dv=64, gate="channel", gate_dtype="f16", chunk=16),
]


@pytest.mark.parametrize("chip", ["sm_80", "sm_90a"])
def test_gated_matrix_ptxas(chip):
    with tempfile.TemporaryDirectory() as out:
        bundles.compile_variants(GATED_MATRIX, out, chip)
        ptx = sorted(f for f in os.listdir(out) if f.endswith(".ptx"))
        assert sum(f.startswith("attn_gdn_chunk") for f in ptx) == len(GATED_MATRIX), ptx
        assert sum(f.startswith("attn_gdn_state") for f in ptx) == len(GATED_MATRIX), ptx
        assert sum(f.startswith("attn_gdn_recurrent") for f in ptx) == len(GATED_MATRIX), ptx
        for f in ptx:
            r = subprocess.run([PTXAS, f"-arch={chip}", "-v", os.path.join(out, f), "-o",
                                os.devnull], capture_output=True, text=True)
            assert r.returncode == 0, f"ptxas rejected {f}:\n{r.stderr}"
            # No more than a few words of spills (a fully unrolled
            # per-channel loop once left the chunk kernel at 32 registers and
            # 3.8 KB of spills, 10x slower; sm_80's ptxas keeps 4-20 bytes).
            spilled = re.search(r"(\d+) bytes spill stores", r.stderr)
            assert spilled and int(spilled.group(1)) <= 32, f"{f} spills:\n{r.stderr}"
            text = open(os.path.join(out, f)).read()
            assert f".target {chip}" in text
            # The chunk kernel's triangular solve and the recurrent kernel's
            # Sᵀk reduce across lanes; the state kernel streams workspace
            # rows with cp.async; the chunk and state kernels' products are
            # tf32 tensor-core tiles.
            assert ("cp.async" if f.startswith("attn_gdn_state") else "shfl.sync.bfly") in text
            if not f.startswith("attn_gdn_recurrent"):
                assert "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in text, f


def nsa(dtype="bf16", d=128, hq=64, hkv=4, cmp_block=32, cmp_stride=16, sel_block=64, n=16,
        initial=1, local=2):
    return {"op": "nsa", "dtype": dtype, "head_dim": d, "q_heads": hq, "kv_heads": hkv,
            "cmp_block": cmp_block, "cmp_stride": cmp_stride, "sel_block": sel_block,
            "num_selected": n, "initial_blocks": initial, "local_blocks": local,
            "scale": 1 / math.sqrt(d), "window": 512, "page_size": 64}


def indexer(dtype="bf16", heads=64, d=128, mask="causal", weights="f32"):
    return {"op": "lightning_indexer", "dtype": dtype, "heads": heads, "head_dim": d,
            "weights_dtype": weights, "mask": mask}


# Sparse attention (issue 9): NSA's selection kernel (groups of 16 and of
# 4, head dims 64-256, the paper's and other block geometries) and the DSA
# indexer's scores kernel (DeepSeek-V3.2's 64 x 128, others; masks; weight
# types). The NSA variants also bring the paged and window-attention kernels
# its branches run on.
SPARSE_MATRIX = [
    nsa(), nsa(dtype="f16", d=64, hq=16, hkv=4, cmp_block=16, cmp_stride=16, sel_block=32, n=8),
    nsa(d=256, hq=16, hkv=1, initial=0, local=1), nsa(d=192, hq=32, hkv=2, sel_block=128, n=4),
    indexer(), indexer(dtype="f16", heads=32, d=64, mask="none", weights="f16"),
    indexer(heads=128, d=256, mask="none"),
    # attn.sparse_attention lowers to the paged kernels it runs on: DSA's
    # latent MLA over single keys, and blocks of 64 with sinks and softcap.
    {"op": "sparse_attention", "dtype": "bf16", "head_dim": 576, "value_head_dim": 512,
     "block_size": 1, "mask": "causal", "scale": 0.1352, "softcap": None, "sinks": False,
     "lse": True, "values": "key_prefix"},
    {"op": "sparse_attention", "dtype": "f16", "head_dim": 128, "value_head_dim": 128,
     "block_size": 64, "mask": "none", "scale": 0.125, "softcap": 30.0, "sinks": True,
     "sinks_dtype": "f32", "lse": False, "values": "separate"},
]


@pytest.mark.parametrize("chip", ["sm_80", "sm_90a"])
def test_sparse_matrix_ptxas(chip):
    with tempfile.TemporaryDirectory() as out:
        bundles.compile_variants(SPARSE_MATRIX, out, chip)
        ptx = sorted(f for f in os.listdir(out) if f.endswith(".ptx"))
        assert sum(f.startswith("attn_nsa_select") for f in ptx) == 4, ptx
        # The selected branch's kernel for each (their blocks are whole 16-key
        # warp tiles: 64, 32, 64, 128).
        assert sum(f.startswith("attn_nsa_attend") for f in ptx) == 4, ptx
        assert sum(f.startswith("attn_indexer_scores") for f in ptx) == 3, ptx
        # Scale and softcap are kernel arguments (bundles.spec_of).
        latent64 = "_vk_r64" if chip == "sm_80" else "_vk_wg_r64"
        assert f"attn_paged_bf16_d576_dv512_nhd_p1_none{latent64}.ptx" in ptx, ptx
        assert "attn_paged_f16_d128_dv128_nhd_p64_none_cap.ptx" in ptx, ptx
        for f in ptx:
            r = subprocess.run([PTXAS, f"-arch={chip}", "-v", os.path.join(out, f), "-o",
                                os.devnull], capture_output=True, text=True)
            assert r.returncode == 0, f"ptxas rejected {f}:\n{r.stderr}"
            if not f.startswith(("attn_nsa_select", "attn_nsa_attend", "attn_indexer_scores")):
                continue
            spilled = re.search(r"(\d+) bytes spill stores", r.stderr)
            assert spilled and int(spilled.group(1)) <= 32, f"{f} spills:\n{r.stderr}"
            text = open(os.path.join(out, f)).read()
            assert f".target {chip}" in text
            # The products are tensor-core tiles (the selection's on sm_90a
            # m64n64k16 wgmma with Q from registers, which ptxas must not
            # serialize), the sums over heads lane shuffles.
            if chip == "sm_90a" and f.startswith("attn_nsa_select"):
                assert f.endswith("_wg.ptx"), f
                assert re.search(r"wgmma\.mma_async\.sync\.aligned\.m64n64k16\.f32\.(bf16|f16)",
                                 text), f
                assert "are serialized" not in r.stderr, r.stderr
            else:
                assert re.search(r"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.(bf16|f16)",
                                 text), f
            if not f.startswith("attn_nsa_attend"):
                assert "shfl.sync.bfly" in text, f
