# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Run MLIR functions on the host CPU through attn-opt and mlir-runner.

Inputs are embedded as hex-encoded dense constants (exact bits) and results
are printed as their i32 bit patterns (exact), so comparisons against the
float64 reference measure the compiled code, not a text round trip.

Tools are found through $ATTN_OPT, $MLIR_RUNNER and $MLIR_LIB_DIR, defaulting
to build/bin/attn-opt and Debian's /usr/lib/llvm-22.

`run_mpi` runs a partitioned (SPMD) module under mpirun, every rank printing
its own results (docs/sharding.md); $MPIRUN and $ATTN_MPI_LIB override the
mpirun on PATH and the MPI library found for it.
"""

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from .reference import round_e4m3

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LLVM = "/usr/lib/llvm-22"

DTYPES = ("f32", "f16", "bf16")


def tools():
    """(attn-opt, mlir-runner, shared libs) or None when one is missing."""
    opt = os.environ.get("ATTN_OPT") or os.path.join(_REPO, "build", "bin", "attn-opt")
    runner = os.environ.get("MLIR_RUNNER") or shutil.which("mlir-runner") or \
        os.path.join(_LLVM, "bin", "mlir-runner")
    libdir = os.environ.get("MLIR_LIB_DIR") or os.path.join(_LLVM, "lib")
    libs = [os.path.join(libdir, n) for n in
            ("libmlir_runner_utils.so", "libmlir_c_runner_utils.so")]
    if not all(os.path.exists(p) for p in [opt, runner] + libs):
        return None
    return opt, runner, libs


def round_to(x, dtype):
    """Rounds float data to `dtype` (round to nearest even), as float32."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "f32":
        return x
    if dtype == "f16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "bf16":
        bits = x.view(np.uint32).astype(np.uint64)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.astype(np.uint32).view(np.float32)
    if dtype == "f8E4M3FN":
        return round_e4m3(x).astype(np.float32)
    raise ValueError(dtype)


def e4m3_bits(x):
    """The f8E4M3FN bit patterns (uint8) of e4m3-representable values."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    _, e2 = np.frexp(np.where(a > 0, a, 1.0))
    exp = e2 - 1
    normal = a >= 2.0 ** -6
    with np.errstate(invalid="ignore"):
        code = np.where(normal, ((exp + 7) << 3) + np.round((a / np.ldexp(1.0, exp) - 1) * 8),
                        np.round(a * 512))
    code = np.where(np.isnan(x), 0x7F, code).astype(np.uint8)
    return code | np.where(np.signbit(x), 0x80, 0).astype(np.uint8)


def _bytes(x, dtype):
    if dtype in ("i32", "i64"):
        return np.asarray(x).astype("<i4" if dtype == "i32" else "<i8").tobytes()
    x = round_to(x, dtype)
    if dtype == "f8E4M3FN":
        return e4m3_bits(x).tobytes()
    if dtype == "f32":
        return x.astype("<f4").tobytes()
    if dtype == "f16":
        return x.astype("<f2").tobytes()
    return (x.view(np.uint32) >> 16).astype("<u2").tobytes()


def tensor_type(shape, dtype):
    return "tensor<" + "".join(f"{d}x" for d in shape) + dtype + ">"


def constant(name, x, dtype):
    """An arith.constant holding `x` rounded to `dtype`, bit-exact."""
    t = tensor_type(x.shape, dtype)
    return f'  {name} = arith.constant dense<"0x{_bytes(x, dtype).hex().upper()}"> : {t}\n'


def _print_bits(name, shape, dtype, k):
    """MLIR that prints tensor `name` as i32 bit patterns of its f32 value."""
    rank = len(shape)
    dims = ", ".join(f"d{i}" for i in range(rank))
    idmap = f"affine_map<({dims}) -> ({dims})>"
    it = ", ".join(['"parallel"'] * rank)
    src, i32 = tensor_type(shape, dtype), tensor_type(shape, "i32")
    ext = "" if dtype in ("f32", "i32") else f"    %w{k} = arith.extf %x{k} : {dtype} to f32\n"
    val = f"%x{k}" if dtype in ("f32", "i32") else f"%w{k}"
    bits = f"    %c{k} = arith.bitcast {val} : f32 to i32\n" if dtype != "i32" else ""
    yielded = f"%c{k}" if dtype != "i32" else val
    return (f"  %e{k} = tensor.empty() : {i32}\n"
            f"  %b{k} = linalg.generic {{indexing_maps = [{idmap}, {idmap}], iterator_types = [{it}]}}"
            f" ins({name} : {src}) outs(%e{k} : {i32}) {{\n"
            f"  ^bb0(%x{k}: {dtype}, %y{k}: i32):\n{ext}"
            f"{bits}"
            f"    linalg.yield {yielded} : i32\n"
            f"  }} -> {i32}\n"
            f"  %u{k} = tensor.cast %b{k} : {i32} to tensor<*xi32>\n"
            f"  call @printMemrefI32(%u{k}) : (tensor<*xi32>) -> ()\n")


def _main(func, args, results, dynamic=(), prologue="", epilogue=""):
    """A @main that calls `func` on `args` (embedded constants) and prints
    its `results` as i32 bit patterns; `prologue`/`epilogue` are lines of
    MLIR placed before the constants and before the return."""
    def dyn(shape, dtype):
        return tensor_type(["?" if i in dynamic else d for i, d in enumerate(shape)], dtype)
    main = "func.func private @printMemrefI32(tensor<*xi32>)\nfunc.func @main() {\n" + prologue
    names = []
    for i, (x, dtype) in enumerate(args):
        main += constant(f"%arg{i}", np.asarray(x), dtype)
        static, dynamic_type = tensor_type(np.shape(x), dtype), dyn(np.shape(x), dtype)
        if dynamic and np.ndim(x) == 4:
            main += f"  %carg{i} = tensor.cast %arg{i} : {static} to {dynamic_type}\n"
            names.append((f"%carg{i}", dynamic_type))
        else:
            names.append((f"%arg{i}", static))
    rnames = ", ".join(f"%d{i}" for i in range(len(results)))
    rtypes = ", ".join(dyn(s, d) if dynamic else tensor_type(s, d) for s, d in results)
    main += (f"  {rnames} = call @{func}({', '.join(n for n, _ in names)}) : "
             f"({', '.join(t for _, t in names)}) -> ({rtypes})\n")
    for i, (shape, dtype) in enumerate(results):
        src = dyn(shape, dtype) if dynamic else tensor_type(shape, dtype)
        if src != tensor_type(shape, dtype):
            main += f"  %r{i} = tensor.cast %d{i} : {src} to {tensor_type(shape, dtype)}\n"
        else:
            main += f"  %r{i} = tensor.cast %d{i} : {src} to {src}\n"
    for i, (shape, dtype) in enumerate(results):
        main += _print_bits(f"%r{i}", shape, dtype, k=i)
    return main + epilogue + "  return\n}\n"


def _lower(opt, text, flags, timeout):
    lowered = subprocess.run([opt, "-", *flags], input=text.encode(),
                             capture_output=True, timeout=timeout)
    if lowered.returncode:
        raise RuntimeError("attn-opt failed:\n" + lowered.stderr.decode())
    return lowered.stdout


def _results(text, results):
    arrays = parse_printed(text, [s for s, _ in results])
    # i32 results come back as their own bits.
    return [a.view(np.int32) if dtype == "i32" else a for a, (_, dtype) in zip(arrays, results)]


def run(module, func, args, results, flags=("--attn-to-cpu",), timeout=600,
        dynamic=()):
    """Calls `func` of `module` (MLIR text) on the CPU.

    args: list of (ndarray, dtype); results: list of (shape, dtype).
    dynamic: dims (by position) that `func`'s signature declares as `?`;
    arguments are tensor.cast to that type and results back.
    Returns the results as float32 arrays (int32 for i32 results).
    """
    found = tools()
    if found is None:
        raise RuntimeError("attn-opt / mlir-runner / runner libraries not found")
    opt, runner, libs = found
    main = _main(func, args, results, dynamic)
    lowered = _lower(opt, module + "\n" + main, flags, timeout)
    out = subprocess.run([runner, "-e", "main", "-entry-point-result=void",
                          "-shared-libs=" + ",".join(libs)],
                         input=lowered, capture_output=True, timeout=timeout)
    if out.returncode:
        raise RuntimeError("mlir-runner failed:\n" + out.stderr.decode())
    return _results(out.stdout.decode(), results)


def mpi():
    """(mpirun, its extra flags, the MPI library, the attn-to-cpu `mpi`
    option naming its ABI) or None when no MPI is installed. $MPIRUN and
    $ATTN_MPI_LIB override the defaults (mpirun on PATH and the library of
    its implementation)."""
    mpirun = os.environ.get("MPIRUN") or shutil.which("mpirun")
    if not mpirun:
        return None
    try:
        version = subprocess.run([mpirun, "--version"], capture_output=True,
                                 timeout=60).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if "Open MPI" in version or "OpenRTE" in version:
        # Root (CI) and more ranks than cores must be allowed explicitly.
        kind, flags, names = "openmpi", ["--oversubscribe", "--allow-run-as-root"], \
            ("libmpi.so.40", "libmpi.so")
    else:
        kind, flags, names = "mpich", [], ("libmpich.so.12", "libmpi.so.12", "libmpich.so")
    lib = os.environ.get("ATTN_MPI_LIB")
    if not lib:
        dirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                "/usr/lib", "/usr/local/lib"]
        lib = next((os.path.join(d, n) for n in names for d in dirs
                    if os.path.exists(os.path.join(d, n))), None)
    if not lib:
        return None
    return mpirun, flags, lib, kind


def run_mpi(module, func, args, results, ranks, flags=("--attn-to-cpu",),
            timeout=600):
    """Calls `func` of the partitioned (SPMD) `module` under `mpirun -np
    ranks`: every rank runs the same program on the same `args` (embedded
    constants) and prints its own results, whose shapes `results(rank)`
    gives as [(shape, dtype)]. The module is lowered with `flags` plus the
    pipeline's `mpi` option for the installed MPI; MPI_Init and
    MPI_Finalize wrap the call. Returns each rank's results."""
    found, mpi_found = tools(), mpi()
    if found is None or mpi_found is None:
        raise RuntimeError("attn-opt / mlir-runner / mpirun / MPI library not found")
    opt, runner, libs = found
    mpirun, mpi_flags, mpi_lib, kind = mpi_found
    shapes = results(0)
    main = _main(func, args, shapes, prologue="  mpi.init\n", epilogue="  mpi.finalize\n")
    flags = [f.replace("--attn-to-cpu", f"--attn-to-cpu=mpi={kind}", 1)
             if f == "--attn-to-cpu" else f for f in flags]
    lowered = _lower(opt, module + "\n" + main, flags, timeout)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "program.mlir")
        with open(path, "wb") as f:
            f.write(lowered)
        # Each rank writes its own file (the rank from MPICH's or Open MPI's
        # environment), so that the outputs do not interleave.
        cmd = (f'exec "$0" "{path}" -e main -entry-point-result=void '
               f'-shared-libs={",".join(libs + [mpi_lib])} '
               f'> "{tmp}/out.${{PMI_RANK:-$OMPI_COMM_WORLD_RANK}}"')
        out = subprocess.run([mpirun, *mpi_flags, "-np", str(ranks), "sh", "-c", cmd, runner],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if out.returncode:
            raise RuntimeError(f"mpirun -np {ranks} failed:\n" + out.stderr.decode()
                               + out.stdout.decode())
        per_rank = []
        for rank in range(ranks):
            with open(os.path.join(tmp, f"out.{rank}")) as f:
                per_rank.append(_results(f.read(), results(rank)))
    return per_rank


def parse_printed(text, shapes):
    """The i32 memrefs printed by printMemrefI32, as float32 arrays."""
    blocks = text.split("Unranked Memref")[1:]
    if len(blocks) != len(shapes):
        raise RuntimeError(f"expected {len(shapes)} printed results:\n{text[:2000]}")
    arrays = []
    for block, shape in zip(blocks, shapes):
        data = block.split("data =", 1)[1]
        ints = np.array([int(v) for v in re.findall(r"-?\d+", data)], dtype=np.int64)
        arrays.append(ints.astype(np.int32).view(np.float32).reshape(shape))
    return arrays


def fuse_only(module):
    """The module after attn-fuse (text), to check that fusion happened."""
    found = tools()
    if found is None:
        raise RuntimeError("attn-opt not found")
    out = subprocess.run([found[0], "-", "--attn-fuse"], input=module.encode(),
                         capture_output=True, timeout=120)
    if out.returncode:
        raise RuntimeError("attn-fuse failed:\n" + out.stderr.decode())
    return out.stdout.decode()
