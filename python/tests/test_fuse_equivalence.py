# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Every positive attn-fuse test input gives the same numbers on the CPU with
and without fusion (attn-to-cpu vs attn-fuse + attn-to-cpu).

The fused path computes in f32 throughout; inputs whose graph computes in
f16/bf16 are compared within a few units of that dtype's precision, f32
graphs within 1e-5 of the output's scale.
"""

import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attn import cpu  # noqa: E402

pytestmark = pytest.mark.skipif(cpu.tools() is None,
                                reason="attn-opt or mlir-runner not found")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INPUTS = ["test/Transforms/attn-fuse-linalg.mlir", "test/Transforms/attn-fuse-tosa.mlir",
          "test/Transforms/attn-fuse-layout.mlir", "test/Transforms/attn-fuse-mask-spellings.mlir",
          "examples/frontend/bert_base_attention_tosa.mlir"]
EPS = {"f32": 2.0 ** -23, "f16": 2.0 ** -10, "bf16": 2.0 ** -7}


def functions():
    for path in INPUTS:
        text = open(os.path.join(ROOT, path)).read()
        for chunk in text.split("// -----"):
            code = "\n".join(l for l in chunk.splitlines() if not l.lstrip().startswith("//"))
            for m in re.finditer(r"func\.func @(\w+)\((.*?)\)\s*->\s*(.*?)\s*\{", code, re.S):
                yield pytest.param(path, code, m.group(1), m.group(2), m.group(3),
                                   id=f"{os.path.basename(path)}:{m.group(1)}")


def parse_type(t):
    m = re.fullmatch(r"tensor<((?:\d+x)*)(\w+)>", t.strip())
    dims = [int(d) for d in m.group(1).split("x") if d]
    return tuple(dims), m.group(2)


# The small examples of the generator stand in for the full-size frontend
# examples (whose unfused [S, S] scores would take hours in naive CPU loops).
sys.path.insert(0, os.path.join(ROOT, "examples", "frontend"))


@pytest.mark.parametrize("path,code,name,args,results", list(functions()))
def test_fused_equals_unfused(path, code, name, args, results):
    arg_types = [parse_type(t) for t in re.findall(r"%\w+:\s*(tensor<[^>]*>)", args)]
    result_types = [parse_type(t) for t in re.findall(r"tensor<[^>]*>", results)]
    rng = np.random.default_rng(0)
    inputs = [(cpu.round_to(rng.standard_normal(s), dt), dt) for s, dt in arg_types]
    fused_ir = cpu.fuse_only(code)
    assert "attn.attention" in fused_ir, "the input did not fuse"
    unfused = cpu.run(code, name, inputs, result_types, flags=("--attn-to-cpu",))
    fused = cpu.run(code, name, inputs, result_types, flags=("--attn-fuse", "--attn-to-cpu"))
    lowp = any(dt != "f32" for _, dt in arg_types + result_types)
    for a, b, (_, dt) in zip(fused, unfused, result_types):
        assert not np.isnan(a).any()
        # Rows whose keys are all masked: NaN unfused (0/0), 0 fused -- the
        # documented difference. Everything else must agree.
        nan_rows = np.isnan(b)
        assert np.all(a[nan_rows] == 0)
        a, b = np.where(nan_rows, 0, a), np.where(nan_rows, 0, b)
        scale = max(1.0, float(np.abs(b).max()))
        err = float(np.abs(a.astype(np.float64) - b).max())
        worst = max(EPS[d] for _, d in arg_types + result_types) if lowp else None
        bound = 16 * worst * scale if lowp else 1e-5 * scale
        assert err <= bound, f"fused vs unfused: max difference {err:.3g} > {bound:.3g}"


BACKWARD = "test/Transforms/attn-fuse-backward.mlir"


def backward_functions():
    text = open(os.path.join(ROOT, BACKWARD)).read()
    for chunk in text.split("// -----"):
        code = "\n".join(l for l in chunk.splitlines() if not l.lstrip().startswith("//"))
        for m in re.finditer(r"func\.func @(\w+)\((.*?)\)\s*->\s*(.*?)\s*\{", code, re.S):
            yield pytest.param(code, m.group(1), m.group(2), m.group(3), id=m.group(1))


@pytest.mark.parametrize("code,name,args,results", list(backward_functions()))
def test_training_graph_fused_equals_unfused(code, name, args, results):
    """Every positive training graph (forward + autograd backward) of
    attn-fuse-backward.mlir becomes attn.attention + attn.attention_grad,
    and attn-tile's backward loops give the unfused graph's numbers.
    Dynamic dims (the same positions in every operand) run at size 24."""
    dyn_types = re.findall(r"%\w+:\s*(tensor<[^>]*>)", args)
    dynamic = {i for t in dyn_types
               for i, d in enumerate(re.match(r"tensor<(.*)>", t).group(1).split("x")[:-1])
               if d == "?"}
    concrete = lambda t: t.replace("?", "24")
    arg_types = [parse_type(concrete(t)) for t in dyn_types]
    result_types = [parse_type(concrete(t)) for t in re.findall(r"tensor<[^>]*>", results)]
    fused_ir = cpu.fuse_only(code)
    assert "attn.attention_grad" in fused_ir, "the backward did not fuse"
    rng = np.random.default_rng(2)
    inputs = [(cpu.round_to(rng.standard_normal(sh), dt), dt) for sh, dt in arg_types]
    unfused = cpu.run(code, name, inputs, result_types, flags=("--attn-to-cpu",),
                      dynamic=dynamic)
    fused = cpu.run(code, name, inputs, result_types,
                    flags=("--attn-fuse", "--attn-to-cpu=block-q=8 block-kv=8"),
                    dynamic=dynamic)
    for i, (a, b) in enumerate(zip(fused, unfused)):
        assert not np.isnan(a).any()
        scale = max(1.0, float(np.abs(b).max()))
        err = float(np.abs(a.astype(np.float64) - b).max())
        assert err <= 1e-5 * scale, f"result {i}: fused vs unfused differ by {err:.3g}"


@pytest.mark.parametrize("model", ["llama3_8b", "mistral_7b"])
def test_frontend_example_small(model):
    """The generator of examples/frontend at small sizes: same graph, same
    numbers with and without fusion."""
    import generate
    code = generate.EXAMPLES[model](small=True)
    m = re.search(r"func\.func @(\w+)\((.*?)\)\s*->\s*(.*?)\s*\{", code, re.S)
    _check(code, m.group(1), m.group(2), m.group(3))


def _check(code, name, args, results):
    arg_types = [parse_type(t) for t in re.findall(r"%\w+:\s*(tensor<[^>]*>)", args)]
    result_types = [parse_type(t) for t in re.findall(r"tensor<[^>]*>", results)]
    rng = np.random.default_rng(1)
    inputs = [(cpu.round_to(rng.standard_normal(s), dt), dt) for s, dt in arg_types]
    assert "attn.attention" in cpu.fuse_only(code)
    unfused = cpu.run(code, name, inputs, result_types, flags=("--attn-to-cpu",))
    fused = cpu.run(code, name, inputs, result_types, flags=("--attn-fuse", "--attn-to-cpu"))
    for a, b, (_, dt) in zip(fused, unfused, result_types):
        scale = max(1.0, float(np.abs(b).max()))
        err = float(np.abs(a.astype(np.float64) - b).max())
        assert err <= 16 * EPS[dt] * scale, f"max difference {err:.3g}"


def test_less_static_tosa_reductions_run():
    """A training graph whose TOSA reductions are typed less statically than
    their operands (tensor<8x?x1xf32> of a static input; fuzz_ops seed 4711)
    crashed LLVM 22's tosa-to-linalg. attn-to-cpu infers the static types
    first: the graph runs and gives the numbers of its static spelling,
    which fuses."""
    path = os.path.join(ROOT, "test/Transforms/attn-to-cpu-tosa-less-static.mlir")
    code = open(path).read().split("// -----")[-1]
    code = "\n".join(l for l in code.splitlines() if not l.lstrip().startswith("//"))
    static = code.replace("8x?x1xf32", "8x16x1xf32")
    assert "?" not in static
    m = re.search(r"func\.func @(\w+)\((.*?)\)\s*->\s*\((.*?)\)\s*\{", code, re.S)
    name, args, results = m.group(1), m.group(2), m.group(3)
    arg_types = [parse_type(t) for t in re.findall(r"%\w+:\s*(tensor<[^>]*>)", args)]
    result_types = [parse_type(t) for t in re.findall(r"tensor<[^>]*>", results)]
    assert "attn.attention_grad" in cpu.fuse_only(static)
    rng = np.random.default_rng(3)
    inputs = [(rng.standard_normal(s), dt) for s, dt in arg_types]
    less_static = cpu.run(code, name, inputs, result_types, flags=("--attn-to-cpu",))
    fused = cpu.run(static, name, inputs, result_types, flags=("--attn-fuse", "--attn-to-cpu"))
    for i, (a, b) in enumerate(zip(less_static, fused)):
        assert not np.isnan(a).any()
        scale = max(1.0, float(np.abs(b).max()))
        err = float(np.abs(a.astype(np.float64) - b).max())
        assert err <= 1e-5 * scale, f"result {i}: differs from the static spelling by {err:.3g}"
