# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The benchmarks' timer: the median time of one call of a function that
launches GPU work, measured with CUDA events."""


def median_ms(fn, iters=20, graph=False, reps=10, warmup=3):
    """Median milliseconds per call of `fn` over `iters` measurements.

    With `graph`, `reps` calls are captured in a CUDA graph (after `warmup`
    calls on a side stream, as capture requires) and each measurement replays
    it: the device's time, without the host's Python and launch overhead (how
    serving engines run decode steps). Without, each measurement is one plain
    call between two events, the host's overhead included wherever the host
    is slower than the GPU."""
    import torch

    run, per = fn, 1
    if graph:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(reps):
                fn()
        run, per = g.replay, reps
    else:
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / per)
    return sorted(times)[len(times) // 2]
