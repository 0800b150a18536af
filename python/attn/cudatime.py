# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The benchmarks' one timer: the GPU time of calls of a function that
launches GPU work (CUDA events), and the host time of such a call.

    median_ms(fn)                       one plain call per measurement
    median_ms(fn, reps=20)              20 back-to-back calls per measurement
    median_ms(fn, graph=True)           a CUDA graph of 10 calls, replayed
    median_ms(fn, inputs=sets)          fn(*sets[i]) in turn (L2 kept cold)
    times_ms(...)                       every measurement (median_ms's list)
    host_us(fn)                         microseconds of the host per call
"""

import itertools
import time


def times_ms(fn, iters=20, graph=False, reps=None, warmup=3, inputs=None):
    """Milliseconds per call of `fn`, one value per measurement, `iters` of
    them, each timed with CUDA events after `warmup` calls.

    A measurement is `reps` calls (1 by default): one call measures its
    GPU time plus whatever of the host's launch overhead the GPU waits for;
    several back-to-back calls hide the host's overhead behind queued work.
    With `graph`, the `reps` calls (10 by default) are captured once in a
    CUDA graph (after the warm-up on a side stream, as capture requires) and
    each measurement replays it: the device's time without the host's (how
    serving engines run decode steps).

    `inputs`: tuples of arguments; successive calls take them in turn
    (fn(*inputs[i % len(inputs)])), so that with enough of them no call
    finds its operands in L2. Without, fn is called with none."""
    import torch

    sets = inputs or [()]
    turn = itertools.count()

    def call():
        fn(*sets[next(turn) % len(sets)])

    reps = reps or (10 if graph else 1)
    if graph:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                call()
        torch.cuda.current_stream().wait_stream(stream)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(reps):
                call()
        measured = g.replay
    else:
        for _ in range(warmup):
            call()

        def measured():
            for _ in range(reps):
                call()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        measured()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / reps)
    return times


def median_ms(fn, iters=20, graph=False, reps=None, warmup=3, inputs=None):
    """The median of times_ms (the upper one for an even `iters`)."""
    times = sorted(times_ms(fn, iters, graph, reps, warmup, inputs))
    return times[len(times) // 2]


# GPU cycles of the kernel that keeps the device busy while host_us
# measures: about a second, far longer than the calls it covers.
_BUSY_CYCLES = int(2e9)


def host_us(fn, iters=200, warmup=1):
    """Microseconds the calling thread spends per call of `fn`: a plain
    loop of `iters` calls timed on the host while the GPU runs a long
    sleep kernel (torch.cuda._sleep), so that no call waits for the device
    and only the host's work (Python, argument checks, launches) is
    counted. `fn` must not synchronize with the GPU, and `iters` times its
    launches must fit in the driver's launch queue (about a thousand)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(_BUSY_CYCLES)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    host = (time.perf_counter() - t) / iters * 1e6
    torch.cuda.synchronize()
    return host
