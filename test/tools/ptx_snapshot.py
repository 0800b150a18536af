#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Snapshots the PTX of every kernel that the GPU suite, the benchmarks and the
ptxas matrix compile, and compares two snapshots: how a refactor of the kernel
generators proves it changed nothing (docs/kernel-spec.md).

  ptx_snapshot.py write DIR [--attn-compile PATH] [--jobs N] [--specialize]
  ptx_snapshot.py compare BEFORE AFTER

`write` fills DIR/<set>/ with the .ptx files of each set (gpu-suite, bench,
paged-bench, gated-bench, sparse-bench, matrix-<chip>-<kernel>); `compare`
prints every kernel that is missing, new or different and exits 1 if any is.
`--specialize` compiles every variant with its scale, softcap and window
extents compiled in (as version 1 specs did), the kernels a snapshot of an
older compiler holds. No GPU needed.

The comparison itself, on two small snapshots (write needs attn-compile and a
CUDA toolkit, and is run by hand):
# RUN: rm -rf %t && mkdir -p %t/a/set %t/b/set
# RUN: echo same > %t/a/set/k1.ptx && echo same > %t/b/set/k1.ptx
# RUN: echo old > %t/a/set/k2.ptx && echo new > %t/b/set/k2.ptx
# RUN: echo gone > %t/a/set/k3.ptx && echo extra > %t/b/set/k4.ptx
# RUN: not %python %s compare %t/a %t/b | FileCheck %s
# CHECK: missing set/k3.ptx
# CHECK: new     set/k4.ptx
# CHECK: differs set/k2.ptx
# CHECK: 1 identical, 3 missing, new or different
# RUN: %python %s compare %t/a %t/a | FileCheck %s --check-prefix=SAME
# SAME: 3 identical, 0 missing, new or different
"""

import argparse
import filecmp
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python", "tests"))


def sets():
    """(name, variants, chip, kernel) of every set the snapshot holds."""
    from attn import bench, bench_gated, bench_paged, bench_sparse  # noqa: E402
    import gpu_cases  # noqa: E402
    import test_ptx_matrix as m  # noqa: E402
    out = [("gpu-suite", gpu_cases.variants(), "sm_90a", "auto"),
           ("bench", bench.variants(), "sm_90a", "auto"),
           ("paged-bench", bench_paged.variants(), "sm_90a", "auto"),
           ("gated-bench", bench_gated.variants(), "sm_90a", "auto"),
           ("sparse-bench", bench_sparse.variants(), "sm_90a", "auto")]
    others = m.PAGED_MATRIX + m.GATED_MATRIX + m.SPARSE_MATRIX
    for chip in ("sm_80", "sm_90a"):
        for kernel in ("auto", "baseline"):
            out.append((f"matrix-{chip}-{kernel}", m.MATRIX, chip, kernel))
        out.append((f"matrix-{chip}-others", others, chip, "auto"))
    return out


def write(directory, attn_compile, jobs, specialize=False):
    from attn import bundles
    os.makedirs(directory, exist_ok=True)
    total = 0
    for name, variants, chip, kernel in sets():
        if specialize:
            variants = [dict(v, specialize=True) for v in variants]
        with tempfile.TemporaryDirectory() as tmp:
            bundles.compile_variants(variants, tmp, chip, attn_compile=attn_compile,
                                     kernel=kernel, jobs=jobs)
            dest = os.path.join(directory, name)
            os.makedirs(dest, exist_ok=True)
            for f in os.listdir(tmp):
                if f.endswith(".ptx"):
                    shutil.copy(os.path.join(tmp, f), dest)
                    total += 1
        print(f"{name}: {len(os.listdir(os.path.join(directory, name)))} kernels", flush=True)
    print(f"{total} kernels in {directory}")


def compare(before, after):
    bad = same = 0
    for name in sorted(os.listdir(before)):
        a, b = os.path.join(before, name), os.path.join(after, name)
        fa = set(os.listdir(a))
        fb = set(os.listdir(b)) if os.path.isdir(b) else set()
        for f in sorted(fa - fb):
            print(f"missing {name}/{f}")
            bad += 1
        for f in sorted(fb - fa):
            print(f"new     {name}/{f}")
            bad += 1
        for f in sorted(fa & fb):
            if filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False):
                same += 1
            else:
                print(f"differs {name}/{f}")
                bad += 1
    print(f"{same} identical, {bad} missing, new or different")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("--attn-compile")
    w.add_argument("--jobs", type=int)
    w.add_argument("--specialize", action="store_true")
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    args = ap.parse_args()
    if args.cmd == "write":
        write(args.dir, args.attn_compile, args.jobs, args.specialize)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
