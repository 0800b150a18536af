"""Compile kernel bundles for attention variants (on a machine with attn-compile).

    python3 -m attn.bundles -o build/bundles [--chip sm_90a] [--gpu-suite]

--gpu-suite writes the bundles the GPU test suite needs
(python/tests/gpu_cases.py). A variant is a dict with the keys of a
manifest's "variant" (see python/attn/gpu.py).
"""

import argparse
import os
import subprocess
import sys

from . import cpu


def variant_mlir(v, name="attn"):
    """A function with one attn.attention of variant `v` (sizes are only
    placeholders: the kernels take them at run time)."""
    d, dv, layout = v["head_dim"], v["value_head_dim"], v["layout"]
    b, h, s = 2, 2, 16
    def shape(dd):
        return [b, s, h, dd] if layout == "bshd" else [b, h, s, dd]
    dt = v["dtype"]
    args = [("%q", cpu.tensor_type(shape(d), dt)), ("%k", cpu.tensor_type(shape(d), dt)),
            ("%v", cpu.tensor_type(shape(dv), dt))]
    extra = ""
    if v.get("bias"):
        bshape = [1 if bc else n for bc, n in zip(v["bias_broadcast"], (b, h, s, s))]
        args.append(("%bias", cpu.tensor_type(bshape, v["bias_dtype"])))
        extra += " bias(%bias)"
    if v.get("sinks"):
        args.append(("%sinks", cpu.tensor_type([h], v["sinks_dtype"])))
        extra += " sinks(%sinks)"
    if layout == "bshd":
        extra += " layout = bshd"
    if v["mask"] == "causal":
        extra += " mask = <causal>"
    elif v["mask"] == "window":
        extra += f" mask = <window, left = {v['window_left']}, right = {v['window_right']}>"
    extra += f" scale = {repr(float(v['scale']))}"
    if v.get("softcap") is not None:
        extra += f" softcap = {repr(float(v['softcap']))}"
    results = [cpu.tensor_type(shape(dv), dt)]
    if v.get("lse"):
        results.append(cpu.tensor_type([b, h, s], "f32"))
    rn = ", ".join(f"%r{i}" for i in range(len(results)))
    return (f"func.func @{name}({', '.join(f'{n}: {t}' for n, t in args)}) -> ({', '.join(results)}) {{\n"
            f"  {rn} = attn.attention %q, %k, %v{extra} : ({', '.join(t for _, t in args)}) -> ({', '.join(results)})\n"
            f"  return {rn} : {', '.join(results)}\n}}\n")


def compile_variants(variants, outdir, chip="sm_90a", attn_compile=None, kernel="auto"):
    """Writes one bundle per distinct variant into `outdir`."""
    tool = attn_compile or os.environ.get("ATTN_COMPILE") or os.path.join(
        os.path.dirname(cpu.tools()[0]) if cpu.tools() else "build/bin", "attn-compile")
    # A bundle directory holds one build: stale kernels of an earlier build
    # (say, baseline ones) would otherwise be matched too.
    if os.path.isdir(outdir):
        for f in os.listdir(outdir):
            if f.endswith((".ptx", ".json")):
                os.remove(os.path.join(outdir, f))
    module = "".join(variant_mlir(v, f"attn{i}") for i, v in enumerate(variants))
    out = subprocess.run([tool, "-", "-o", outdir, f"--chip={chip}", "--no-fuse",
                          f"--kernel={kernel}"],
                         input=module.encode(), capture_output=True)
    if out.returncode:
        raise RuntimeError("attn-compile failed:\n" + out.stderr.decode())
    return out.stdout.decode().split()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--chip", default="sm_90a")
    ap.add_argument("--gpu-suite", action="store_true")
    ap.add_argument("--kernel", default="auto", choices=["baseline", "mma", "auto"])
    args = ap.parse_args()
    if not args.gpu_suite:
        ap.error("nothing to compile: pass --gpu-suite")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    import gpu_cases
    written = compile_variants(gpu_cases.variants(), args.output, args.chip, kernel=args.kernel)
    print(f"{len(written)} bundles in {args.output}")


if __name__ == "__main__":
    main()
