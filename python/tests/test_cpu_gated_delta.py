# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""CPU execution of attn.gated_delta_rule (attn-decompose-gated-delta, then
the CPU pipeline) against the float64 token-by-token reference: Gated
DeltaNet (per-head gates) and Kimi Delta Attention (per-channel gates),
Hk != Hv, with and without an initial state and L2 normalization, T from 1
(decode) up, f32 and f16/bf16 inputs. Skips when attn-opt or mlir-runner is
missing."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import cpu  # noqa: E402
from seeds import stable_seed  # noqa: E402
from attn.reference import gated_delta_reference  # noqa: E402

pytestmark = pytest.mark.skipif(cpu.tools() is None,
                                reason="attn-opt or mlir-runner not found")


def case(id, b=1, t=7, hk=2, hv=4, dk=16, dv=8, dtype="f32", channel=False, init=False,
         l2=False, scale=None):
    return pytest.param(dict(b=b, t=t, hk=hk, hv=hv, dk=dk, dv=dv, dtype=dtype,
                             channel=channel, init=init, l2=l2, scale=scale), id=id)


CASES = [
    case("gdn_decode_t1_init", t=1, init=True),
    case("gdn_hk_ne_hv_l2", t=9, l2=True),
    case("gdn_b2_t33_init_l2_f16", b=2, t=33, init=True, l2=True, dtype="f16"),
    case("kda_channel_gates_init", t=11, channel=True, init=True, scale=0.3),
    case("kda_bf16_l2", t=5, hk=1, hv=3, dk=12, dv=10, channel=True, l2=True, dtype="bf16"),
]


@pytest.mark.parametrize("c", CASES)
def test_gated_delta_cpu(c):
    rng = np.random.default_rng(stable_seed(sorted(c.items())))
    b, t, hk, hv, dk, dv, dt = c["b"], c["t"], c["hk"], c["hv"], c["dk"], c["dv"], c["dtype"]
    q = rng.standard_normal((b, t, hk, dk)).astype(np.float32)
    k = rng.standard_normal((b, t, hk, dk)).astype(np.float32)
    if not c["l2"]:  # keep the recurrence contractive without normalization
        k /= np.sqrt(dk)
    v = rng.standard_normal((b, t, hv, dv)).astype(np.float32)
    gshape = (b, t, hv, dk) if c["channel"] else (b, t, hv)
    g = (-0.5 * rng.random(gshape)).astype(np.float32)
    beta = rng.random((b, t, hv)).astype(np.float32)
    s0 = rng.standard_normal((b, hv, dk, dv)).astype(np.float32) if c["init"] else None
    args = [(q, dt), (k, dt), (v, dt), (g, "f32"), (beta, "f32")]
    if s0 is not None:
        args.append((s0, "f32"))
    names = ["%q", "%k", "%v", "%g", "%b"] + (["%s0"] if s0 is not None else [])
    types = [cpu.tensor_type(x.shape, d) for x, d in args]
    otype = cpu.tensor_type((b, t, hv, dv), dt)
    stype = cpu.tensor_type((b, hv, dk, dv), "f32")
    extra = " initial_state(%s0)" if s0 is not None else ""
    if c["channel"]:
        extra += " gate_kind = channel"
    if c["l2"]:
        extra += " qk_l2norm"
    if c["scale"] is not None:
        extra += f" scale = {c['scale']}"
    module = (f"func.func @gdn({', '.join(f'{n}: {ty}' for n, ty in zip(names, types))}) -> "
              f"({otype}, {stype}) {{\n"
              f"  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b{extra} : "
              f"({', '.join(types)}) -> ({otype}, {stype})\n"
              f"  return %o, %s : {otype}, {stype}\n}}\n")
    got_o, got_s = cpu.run(module, "gdn", args, [((b, t, hv, dv), dt), ((b, hv, dk, dv), "f32")])
    rounded = [cpu.round_to(x, d) for x, d in args]
    ref_o, ref_s = gated_delta_reference(*rounded[:5], initial_state=rounded[5] if s0 is not None else None,
                                         qk_l2norm=c["l2"], scale=c["scale"])
    # f32 arithmetic: relative to the outputs' scale; the output is rounded to
    # its element type (f16: 2^-11, bf16: 2^-8 relative).
    out_tol = {"f32": 1e-5, "f16": 2e-3, "bf16": 1e-2}[dt]
    o_scale, s_scale = np.abs(ref_o).max(), np.abs(ref_s).max()
    assert np.abs(got_o - ref_o).max() <= out_tol * o_scale, np.abs(got_o - ref_o).max() / o_scale
    assert np.abs(got_s - ref_s).max() <= 1e-5 * s_scale, np.abs(got_s - ref_s).max() / s_scale
