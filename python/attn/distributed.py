# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Context parallelism: ring attention over torch.distributed.

    from attn import distributed as cp
    q_local = cp.zigzag_shard(q, rank, world_size)        # and k, v, do alike
    out, lse = cp.context_parallel_attention(q_local, k_local, v_local, causal=True,
                                             return_lse=True, bundles="build/bundles")

The sequence is split over the N ranks of a process group (`group`, the
default group when None). Each rank passes its own rows of q, k and v (and
gets its rows of the output and the LSE [B, Hq, S_local]); the key/value
blocks travel around the ring, rank r sending to r + 1 and receiving from
r - 1, so that after N steps every query block has met every key block.

Zigzag. With N ranks the sequence is cut into 2N equal chunks and rank r
holds chunks r and 2N - 1 - r, in that order (zigzag_shard, zigzag_unshard):
under a causal mask every rank then has the same amount of work. Each
(query chunk, key chunk) pair of a step is one of: key chunk before the
query chunk: unmasked; the same chunk: causal (the chunks have the same
size, so attn's bottom-right aligned mask is also top-left aligned);
after: skipped. The kernels take no position offset, so these are the only
masks a block call gets. A step's pairs are run as few calls as those masks
allow: at step 0 the rank's two chunks against its own two are one causal
call of 2C rows; at step s > 0, keys from a rank before it (r - s >= 0) are
one unmasked call of all 2C rows against the first key chunk, keys from a
rank after it one unmasked call of the last C rows against both key
chunks. Without a mask every step is one unmasked call (and the rows need
not be zigzag-ordered; Sq and Sk may differ). A window (left, right) is
taken where every pair maps onto a bottom-right aligned window with
non-negative extents, an unmasked block or a skipped one, e.g. extents that
are multiples of the chunk length; any other window raises ValueError
naming the pair (no pair is silently masked differently).

Overlap. Step s posts the transfer of the key/value block that step s + 1
uses (torch.distributed.batch_isend_irecv into the other of two receive
buffers) before it runs its own block calls, and waits for it after them;
set_ring_trace records that order. With the gloo backend CUDA tensors are
staged through host memory (gloo's point-to-point ops take CPU tensors).

Merge. Every block call returns its partial output O_i and LSE lse_i; the
rank's rows are merged in float32 (float64 for float64 inputs):
lse = logaddexp(lse_a, lse_b), O = exp(lse_a - lse) O_a + exp(lse_b - lse) O_b,
where a row that no block admits stays O = 0, lse = -inf (no NaN). Sinks
are never passed to the block kernels: each head's sink logit is merged
once, at the end, as one more LSE term with a zero output, so it enters the
softmax's denominator exactly once per row.

Backward (torch.autograd.Function): the ring runs again. dQ accumulates on
the rank; each key/value block travels with float32 dK/dV accumulators
that every rank adds its queries' gradient to, and that arrive back home
after N steps (the accumulators' transfer overlaps the next step's block
calls). Each block's gradient is the block kernel's backward given the
merged (global) output and LSE, which makes it exact: P = exp(S - lse) is
the row's true softmax over the block, and Delta = rowsum(dO * O) the true
row term. The sink gradient -sum_i exp(sink - lse_i) Delta_i is summed over
the rank's rows and all-reduced over the group: like dK and dV (which sum
every rank's queries), every rank gets the gradient of the sum of all
ranks' losses.

Block kernels (`blocks`): an object with
`forward(q, k, v, *, causal, window, softcap, scale, layout) -> (out, lse)`
and `backward(do, q, k, v, out, lse, *, causal, window, softcap, scale,
layout) -> (dq, dk, dv)`.

* GpuBlocks(bundles): attn's kernels, attn.gpu.attention(...,
  return_lse=True) and attn.gpu.attention_backward; the default for CUDA
  tensors. The bundles need the forward with its LSE and the backward for
  the unmasked and (causal) the causal variant of the call's dtype, head
  dims, layout and softcap (python/tests/gpu_cases.py CP_CASES).
* TorchBlocks(): plain torch math in float32 (float64 for float64 inputs)
  on any device, the backward by the standard formulas; the default for
  other tensors, and the tests' kernel on the CPU.
"""

import contextlib
import math

_SEQ_DIM = {"bhsd": 2, "bshd": 1}
_trace = None


def set_ring_trace(fn):
    """Calls fn(event, step) at each point of the ring's schedule and returns
    the previous callback (None: no tracing). Events: "post" (the transfer
    that step `step` will use is posted), "compute" and "computed" (step's
    block calls start and end), "wait" (the transfer for `step` is waited
    for); in the backward also "post_grad" and "wait_grad" (the dK/dV
    accumulators that leave after step `step`)."""
    global _trace
    previous, _trace = _trace, fn
    return previous


def _event(name, step):
    if _trace is not None:
        _trace(name, step)


# --------------------------------------------------------------------------
# Zigzag sharding.


def _seq_dim(layout):
    if layout not in _SEQ_DIM:
        raise ValueError(f"unknown layout {layout!r}; expected 'bhsd' or 'bshd'")
    return _SEQ_DIM[layout]


def zigzag_chunks(rank, world_size):
    """The two chunks (of the sequence's 2 * world_size) that `rank` holds."""
    return rank, 2 * world_size - 1 - rank


def zigzag_shard(x, rank, world_size, *, layout="bhsd"):
    """Rank `rank`'s rows of the whole-sequence tensor x ([B, H, S, D] for
    "bhsd", [B, S, H, D] for "bshd"): chunks rank and 2N - 1 - rank of 2N,
    concatenated. ValueError unless S is divisible by 2N."""
    import torch

    dim = _seq_dim(layout)
    s = x.shape[dim]
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not one of {world_size} ranks")
    if s % (2 * world_size):
        raise ValueError(f"sequence length {s} is not divisible by 2N = {2 * world_size}: "
                         f"zigzag cuts it into 2 chunks per rank")
    c = s // (2 * world_size)
    a, b = zigzag_chunks(rank, world_size)
    return torch.cat([x.narrow(dim, a * c, c), x.narrow(dim, b * c, c)], dim).contiguous()


def zigzag_unshard(parts, *, layout="bhsd"):
    """The whole-sequence tensor from every rank's zigzag_shard, in rank
    order (the inverse of zigzag_shard)."""
    import torch

    dim = _seq_dim(layout)
    n = len(parts)
    c = parts[0].shape[dim] // 2
    chunks = [None] * (2 * n)
    for r, p in enumerate(parts):
        if p.shape[dim] != 2 * c:
            raise ValueError(f"rank {r}'s part has {p.shape[dim]} rows, rank 0's {2 * c}")
        a, b = zigzag_chunks(r, n)
        chunks[a], chunks[b] = p.narrow(dim, 0, c), p.narrow(dim, c, c)
    return torch.cat(chunks, dim)


# --------------------------------------------------------------------------
# The LSE merge.


def _rows(lse, layout):
    """lse [B, H, S] broadcast against an output in `layout`."""
    return (lse if layout == "bhsd" else lse.transpose(1, 2)).unsqueeze(-1)


def merge_partials(out_a, lse_a, out_b, lse_b, *, layout="bhsd"):
    """The attention over the union of two disjoint key sets from each
    one's output and LSE: (out, lse) in the dtype of out_a/lse_a (out_b may
    be None: no values, as a sink's term). Rows neither admits give 0 and
    -inf, not NaN."""
    import torch

    lse_b = lse_b.to(lse_a.dtype)
    m = torch.maximum(lse_a, lse_b)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    w_a, w_b = torch.exp(lse_a - m), torch.exp(lse_b - m)
    l = w_a + w_b
    pos = l > 0
    lse = torch.where(pos, m + torch.log(torch.where(pos, l, torch.ones_like(l))),
                      torch.full_like(l, -math.inf))
    inv = torch.where(pos, 1 / torch.where(pos, l, torch.ones_like(l)), torch.zeros_like(l))
    out = out_a * _rows(w_a * inv, layout)
    if out_b is not None:
        out = out + out_b.to(out_a.dtype) * _rows(w_b * inv, layout)
    return out, lse


def _merge_dtype(dtype):
    import torch

    return torch.promote_types(dtype, torch.float32)


# --------------------------------------------------------------------------
# Block kernels.


class GpuBlocks:
    """attn's GPU kernels as the ring's block kernel: attn.gpu.attention
    with return_lse=True and attn.gpu.attention_backward, from `bundles`
    (ATTN_BUNDLES or build/bundles when None). Sinks are merged by the ring,
    so the kernels run without them."""

    def __init__(self, bundles=None):
        self.bundles = bundles

    def forward(self, q, k, v, *, causal, window, softcap, scale, layout):
        from . import gpu

        return gpu.attention(q.contiguous(), k.contiguous(), v.contiguous(), causal=causal,
                             window=window, softcap=softcap, scale=scale, layout=layout,
                             return_lse=True, bundles=self.bundles)

    def backward(self, do, q, k, v, out, lse, *, causal, window, softcap, scale, layout):
        import torch

        from . import gpu

        dt = q.dtype
        return gpu.attention_backward(
            do.to(dt).contiguous(), q.contiguous(), k.contiguous(), v.contiguous(),
            out.to(dt).contiguous(), lse.to(torch.float32).contiguous(), causal=causal,
            window=window, softcap=softcap, scale=scale, layout=layout, bundles=self.bundles)


class TorchBlocks:
    """The block kernel in plain torch: float32 math (float64 for float64
    inputs) on the tensors' device, bottom-right aligned masks, GQA, scale,
    softcap. forward returns (out, lse) in that dtype, rows without keys
    giving 0 and -inf; backward the standard gradients (P = exp(S - lse),
    Delta = rowsum(dO * O), dS = P (dP - Delta), softcap's 1 - tanh^2, dK/dV
    summed over each GQA group)."""

    @staticmethod
    def _prepare(q, k, v, layout, scale, extra=()):
        ct = _merge_dtype(q.dtype)
        ts = [t.to(ct) for t in (q, k, v) + tuple(extra)]
        if layout == "bshd":
            ts = [t.transpose(1, 2) if t.dim() == 4 else t for t in ts]
        q, k, v = ts[:3]
        g = q.shape[1] // k.shape[1]
        scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
        return ts, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), g, scale

    @staticmethod
    def _admitted(sq, sk, causal, window, device):
        import torch

        if not causal and window is None:
            return None
        i = torch.arange(sq, device=device)[:, None] + (sk - sq)
        j = torch.arange(sk, device=device)[None, :]
        if causal:
            return j <= i
        left, right = window
        return (j >= i - left) & (j <= i + right)

    def _scores(self, q, kh, scale, softcap, causal, window):
        import torch

        r = scale * (q @ kh.transpose(-1, -2))
        t, dt = r, None
        if softcap is not None:
            th = torch.tanh(r / softcap)
            t, dt = softcap * th, 1 - th * th
        allowed = self._admitted(q.shape[2], kh.shape[2], causal, window, q.device)
        if allowed is not None:
            t = t.masked_fill(~allowed, -math.inf)
        return t, dt

    @staticmethod
    def _layout(t, layout):
        return t.transpose(1, 2) if layout == "bshd" else t

    def forward(self, q, k, v, *, causal, window, softcap, scale, layout):
        import torch

        (q, _, _), kh, vh, _, scale = self._prepare(q, k, v, layout, scale)
        s, _ = self._scores(q, kh, scale, softcap, causal, window)
        m = s.amax(-1)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        e = torch.exp(s - m.unsqueeze(-1))
        l = e.sum(-1)
        pos = l > 0
        safe = torch.where(pos, l, torch.ones_like(l))
        lse = torch.where(pos, m + torch.log(safe), torch.full_like(l, -math.inf))
        out = (e / safe.unsqueeze(-1)) @ vh
        return self._layout(out, layout), lse

    def backward(self, do, q, k, v, out, lse, *, causal, window, softcap, scale, layout):
        import torch

        (q, k, v, do, out), kh, vh, g, scale = self._prepare(q, k, v, layout, scale, (do, out))
        s, dt = self._scores(q, kh, scale, softcap, causal, window)
        lse = lse.to(s.dtype)
        finite = torch.isfinite(lse)
        lse = torch.where(finite, lse, torch.zeros_like(lse))
        p = torch.exp(s - lse.unsqueeze(-1)) * finite.unsqueeze(-1)
        dvh = p.transpose(-1, -2) @ do
        dp = do @ vh.transpose(-1, -2)
        delta = (do * out).sum(-1, keepdim=True)
        ds = p * (dp - delta)
        if dt is not None:
            ds = ds * dt
        dq = scale * (ds @ kh)
        dkh = scale * (ds.transpose(-1, -2) @ q)
        b, hkv, sk = k.shape[0], k.shape[1], k.shape[2]
        dk = dkh.reshape(b, hkv, g, sk, -1).sum(2)
        dv = dvh.reshape(b, hkv, g, sk, -1).sum(2)
        return tuple(self._layout(t, layout) for t in (dq, dk, dv))


# --------------------------------------------------------------------------
# The ring's schedule: which block calls each step runs.


class _Plan:
    """The block calls of every step for this rank: (q chunk range, key
    chunk range, causal, window) in chunk units of the rank's local rows."""

    def __init__(self, rank, size, causal, window, sq, sk):
        self.rank, self.size = rank, size
        self.causal, self.window = causal, window
        self.masked = causal or window is not None
        if self.masked:
            if sq != sk:
                raise ValueError(f"a causal or window mask needs as many query rows as keys "
                                 f"on every rank (self-attention); got {sq} and {sk}")
        if not self.masked:
            # Every pair unmasked: one call per step, any equal split.
            self.cq, self.ck = sq, sk
            return
        if sq % 2:
            raise ValueError(
                f"the local sequence of {sq} rows is not two equal chunks: with N = {size} "
                f"ranks the sequence is cut into 2N = {2 * size} chunks (zigzag), so its "
                f"length must be divisible by {2 * size}")
        self.cq = self.ck = sq // 2
        # Every rank checks every pair of the ring before any transfer: a
        # window that does not map raises on all ranks alike, not on some.
        for qi in range(2 * size):
            for kj in range(2 * size):
                self._pair(qi, kj)

    def _pair(self, qi, kj):
        """The mask of query chunk qi against key chunk kj (global chunk
        indices): "full", "causal", ("window", left, right) or None."""
        if not self.masked:
            return "full"
        if self.causal:
            return "full" if kj < qi else "causal" if kj == qi else None
        c = self.cq
        left, right = self.window
        d = kj - qi
        lo, hi = -left - d * c, right - d * c  # admitted j - i within the pair
        if hi < -(c - 1) or lo > c - 1:
            return None
        lo, hi = max(lo, -(c - 1)), min(hi, c - 1)
        if lo == -(c - 1) and hi == c - 1:
            return "full"
        if lo <= 0 <= hi:
            return ("window", -lo, hi)
        raise ValueError(
            f"window {tuple(self.window)} does not map onto the ring's blocks: query chunk "
            f"{qi} against key chunk {kj} (chunks of {c} rows) admits keys at offsets "
            f"{lo}..{hi} from each row's own position, which no bottom-right aligned window "
            f"with non-negative extents expresses (the GPU kernels take no position offset); "
            f"use extents that are multiples of the chunk length")

    def calls(self, src):
        """[(q0, q1, k0, k1, causal, window)] for the key/value block of rank
        `src` (local chunk indices, half-open ranges)."""
        if not self.masked:
            return [(0, 1, 0, 1, False, None)]
        qs = zigzag_chunks(self.rank, self.size)
        ks = zigzag_chunks(src, self.size)
        m = [[self._pair(qi, kj) for kj in ks] for qi in qs]
        active = [(a, b) for a in range(2) for b in range(2) if m[a][b] is not None]
        if not active:
            return []
        if all(m[a][b] == "full" for a, b in active):
            a0, a1 = min(a for a, _ in active), max(a for a, _ in active) + 1
            b0, b1 = min(b for _, b in active), max(b for _, b in active) + 1
            if len(active) == (a1 - a0) * (b1 - b0):
                return [(a0, a1, b0, b1, False, None)]
        if m == [["causal", None], ["full", "causal"]]:
            # The rank's own block: one causal call of its 2C rows (its two
            # chunks are in order, so the local causal mask is the global one).
            return [(0, 2, 0, 2, True, None)]
        out = []
        for a, b in active:
            pair = m[a][b]
            if pair == "full":
                out.append((a, a + 1, b, b + 1, False, None))
            elif pair == "causal":
                out.append((a, a + 1, b, b + 1, True, None))
            else:
                out.append((a, a + 1, b, b + 1, False, pair[1:]))
        return out


# --------------------------------------------------------------------------
# Communication.


class _Ring:
    """Rank r's neighbours in `group`: it sends to r + 1, receives from r - 1."""

    def __init__(self, group):
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("context_parallel_attention needs an initialized "
                               "torch.distributed process group (init_process_group)")
        self.dist, self.group = dist, group
        self.size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.next = self._global((self.rank + 1) % self.size)
        self.prev = self._global((self.rank - 1) % self.size)
        self.stage = dist.get_backend(group) == "gloo"

    def _global(self, r):
        dist = self.dist
        if self.group is None or self.group is dist.group.WORLD:
            return r
        get = getattr(dist, "get_global_rank", None)
        if get is None:
            get = dist.distributed_c10d._get_global_rank
        return get(self.group, r)

    def exchange(self, send, recv, tag):
        """Posts the sends of tensors `send` to the next rank and the receives
        into `recv` from the previous one (tags tag, tag + 1, ...); returns
        the pending transfer (.wait())."""
        dist = self.dist
        ops, staged = [], []
        for i, (s, r) in enumerate(zip(send, recv)):
            if self.stage and s.is_cuda:
                s = s.cpu()
                host = _host_like(r)
                staged.append((host, r))
                r = host
            ops.append(dist.P2POp(dist.isend, s.contiguous(), self.next, self.group, tag + i))
            ops.append(dist.P2POp(dist.irecv, r, self.prev, self.group, tag + i))
        return _Pending(dist.batch_isend_irecv(ops), staged, ops)


def _host_like(t):
    import torch

    return torch.empty(t.shape, dtype=t.dtype, device="cpu")


class _Pending:
    def __init__(self, requests, staged, ops):
        self.requests, self.staged, self.ops = requests, staged, ops  # ops: keep buffers alive

    def wait(self):
        for r in self.requests:
            r.wait()
        for host, r in self.staged:
            r.copy_(host)
        self.ops = None


@contextlib.contextmanager
def _draining(*pending):
    """Where a block call raises, completes the transfers in flight first:
    every rank posted them, so they finish, and no stale message is left to
    meet a later ring's receives. (A block kernel that fails on some ranks
    only leaves the others waiting for the group's timeout, as any
    collective would.)"""
    try:
        yield
    except BaseException:
        for p in pending:
            if p is not None:
                p.wait()
        raise


# --------------------------------------------------------------------------
# Forward and backward rings.


class _Options:
    def __init__(self, causal, window, softcap, scale, layout, group, blocks):
        self.causal, self.window, self.softcap, self.scale = causal, window, softcap, scale
        self.layout, self.group, self.blocks = layout, group, blocks

    def kernel_args(self, causal, window):
        return dict(causal=causal, window=window, softcap=self.softcap, scale=self.scale,
                    layout=self.layout)


def _check(q, k, v, sinks, opts):
    import torch

    dim = _seq_dim(opts.layout)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor ({opts.layout})")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError("q, k and v must have the same dtype")
    hdim = 3 - dim
    b, hq, hkv = q.shape[0], q.shape[hdim], k.shape[hdim]
    if (k.shape[0] != b or v.shape[0] != b or k.shape[-1] != q.shape[-1]
            or tuple(v.shape[:3]) != tuple(k.shape[:3])):
        raise ValueError(f"inconsistent shapes q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    if hkv == 0 or hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of key/value heads ({hkv})")
    if opts.causal and opts.window is not None:
        raise ValueError("pass either causal=True or window=(left, right)")
    if opts.window is not None:
        left, right = opts.window
        if left < 0 or right < 0:
            raise ValueError(f"window extents must be non-negative, got {opts.window!r}")
    if opts.scale is not None and (isinstance(opts.scale, bool) or not isinstance(
            opts.scale, (int, float)) or not math.isfinite(opts.scale)):
        raise ValueError(f"scale must be a finite number, got {opts.scale!r}")
    if opts.softcap is not None and (isinstance(opts.softcap, bool) or not isinstance(
            opts.softcap, (int, float)) or not math.isfinite(opts.softcap) or opts.softcap <= 0):
        raise ValueError(f"softcap must be a positive finite number, got {opts.softcap!r}")
    if sinks is not None and tuple(sinks.shape) != (hq,):
        raise ValueError(f"sinks must be a tensor of shape ({hq},)")
    return q.shape[dim], k.shape[dim]


def _slice(t, dim, c, lo, hi):
    return t.narrow(dim, lo * c, (hi - lo) * c)


def _post_next_block(ring, cur, buffers, step):
    """Posts the transfer of the K/V block that step + 1 uses into the other
    of the two receive buffers (made on first use): (pending, buffer), or
    (None, None) at the last step."""
    import torch

    if step + 1 >= ring.size:
        return None, None
    if buffers[step % 2] is None:
        buffers[step % 2] = tuple(torch.empty_like(t) for t in cur)
    nxt = buffers[step % 2]
    pending = ring.exchange(cur, nxt, 0)
    _event("post", step + 1)
    return pending, nxt


def _ring_forward(q, k, v, sinks, opts):
    import torch

    ring = _Ring(opts.group)
    sq, sk = _check(q, k, v, sinks, opts)
    plan = _Plan(ring.rank, ring.size, opts.causal, opts.window, sq, sk)
    dim, layout, n = _seq_dim(opts.layout), opts.layout, ring.size
    mdt = _merge_dtype(q.dtype)
    b, hq = q.shape[0], q.shape[3 - dim]
    out_shape = list(q.shape[:3]) + [v.shape[-1]]
    acc = torch.zeros(out_shape, dtype=mdt, device=q.device)
    lse = torch.full((b, hq, sq), -math.inf, dtype=mdt, device=q.device)
    cur, buffers = (k, v), [None, None]
    for step in range(n):
        pending, nxt = _post_next_block(ring, cur, buffers, step)
        _event("compute", step)
        with _draining(pending):
            for q0, q1, k0, k1, causal, window in plan.calls((ring.rank - step) % n):
                o_b, l_b = opts.blocks.forward(
                    _slice(q, dim, plan.cq, q0, q1), _slice(cur[0], dim, plan.ck, k0, k1),
                    _slice(cur[1], dim, plan.ck, k0, k1), **opts.kernel_args(causal, window))
                rows_o = _slice(acc, dim, plan.cq, q0, q1)
                rows_l = _slice(lse, 2, plan.cq, q0, q1)
                o_m, l_m = merge_partials(rows_o, rows_l, o_b, l_b, layout=layout)
                rows_o.copy_(o_m)
                rows_l.copy_(l_m)
        _event("computed", step)
        if pending is not None:
            _event("wait", step + 1)
            pending.wait()
            cur = nxt
    if sinks is not None:
        sink = sinks.to(device=q.device, dtype=mdt)[None, :, None].expand(b, hq, sq)
        acc, lse = merge_partials(acc, lse, None, sink, layout=layout)
    return acc.to(q.dtype), lse


def _ring_backward(do, q, k, v, out, lse, sinks, opts):
    import torch

    ring = _Ring(opts.group)
    sq, sk = _check(q, k, v, sinks, opts)
    plan = _Plan(ring.rank, ring.size, opts.causal, opts.window, sq, sk)
    dim, n = _seq_dim(opts.layout), ring.size
    mdt = _merge_dtype(q.dtype)
    dq = torch.zeros(q.shape, dtype=mdt, device=q.device)
    cur, buffers = (k, v), [None, None]
    grad_buffers = [None, None]
    dkv, pending_grad = None, None
    for step in range(n):
        pending, nxt = _post_next_block(ring, cur, buffers, step)
        _event("compute", step)
        part = (torch.zeros(k.shape, dtype=mdt, device=k.device),
                torch.zeros(v.shape, dtype=mdt, device=v.device))
        with _draining(pending, pending_grad):
            for q0, q1, k0, k1, causal, window in plan.calls((ring.rank - step) % n):
                rows = lambda t: _slice(t, dim, plan.cq, q0, q1)  # noqa: E731
                keys = lambda t: _slice(t, dim, plan.ck, k0, k1)  # noqa: E731
                g_q, g_k, g_v = opts.blocks.backward(
                    rows(do), rows(q), keys(cur[0]), keys(cur[1]), rows(out),
                    _slice(lse, 2, plan.cq, q0, q1), **opts.kernel_args(causal, window))
                rows(dq).add_(g_q.to(mdt))
                keys(part[0]).add_(g_k.to(mdt))
                keys(part[1]).add_(g_v.to(mdt))
        _event("computed", step)
        if pending_grad is not None:
            _event("wait_grad", step - 1)
            pending_grad.wait()
            part[0].add_(dkv[0])
            part[1].add_(dkv[1])
        if n > 1:
            # The accumulators of the block this rank holds go on to the next
            # rank (after the last step: home).
            if grad_buffers[step % 2] is None:
                grad_buffers[step % 2] = tuple(torch.empty_like(t) for t in part)
            dkv = grad_buffers[step % 2]
            pending_grad = ring.exchange(part, dkv, 2)
            _event("post_grad", step)
        else:
            dkv = part
        if pending is not None:
            _event("wait", step + 1)
            pending.wait()
            cur = nxt
    if pending_grad is not None:
        _event("wait_grad", n - 1)
        pending_grad.wait()
    dsinks = None
    if sinks is not None:
        dsinks = _sinks_grad(do, out, lse, sinks, opts, ring)
    return dq.to(q.dtype), dkv[0].to(k.dtype), dkv[1].to(v.dtype), dsinks


def _sinks_grad(do, out, lse, sinks, opts, ring):
    """-sum over the group's rows of exp(sink - lse) * rowsum(dO * O)."""
    import torch

    mdt = lse.dtype
    delta = (do.to(mdt) * out.to(mdt)).sum(-1)
    if opts.layout == "bshd":
        delta = delta.transpose(1, 2)
    sink = sinks.to(device=lse.device, dtype=mdt)[None, :, None]
    grad = -(torch.exp(sink - lse) * delta).sum((0, 2))
    if ring.size > 1:
        staged = ring.stage and grad.is_cuda
        g = grad.cpu() if staged else grad
        ring.dist.all_reduce(g, group=ring.group)
        grad = g.to(grad.device) if staged else g
    return grad.to(sinks.dtype)


def _make_function():
    import torch

    class RingAttention(torch.autograd.Function):
        """The ring's forward; its backward runs the ring again."""

        @staticmethod
        def forward(ctx, q, k, v, sinks, opts):
            out, lse = _ring_forward(q, k, v, sinks, opts)
            ctx.save_for_backward(q, k, v, out, lse, sinks)
            ctx.opts = opts
            ctx.mark_non_differentiable(lse)
            return out, lse

        @staticmethod
        def backward(ctx, do, _):
            q, k, v, out, lse, sinks = ctx.saved_tensors
            dq, dk, dv, dsinks = _ring_backward(do, q, k, v, out, lse, sinks, ctx.opts)
            return dq, dk, dv, dsinks, None

    return RingAttention


_function = None


def context_parallel_attention(q, k, v, *, causal=False, window=None, softcap=None, scale=None,
                               sinks=None, layout="bhsd", return_lse=False, group=None,
                               blocks=None, bundles=None):
    """Ring attention over the ranks of `group` (torch.distributed; the
    default group when None). q, k, v are this rank's rows ([B, H, S_local,
    D], or [B, S_local, H, D] for layout="bshd"): with a causal or window
    mask its zigzag_shard (chunks r and 2N - 1 - r of 2N), without one any
    split into equal parts. GQA by the head counts; scale (1/sqrt(D) by
    default); softcap; sinks [Hq] (float32 for the GPU kernels), counted
    once per row. Returns this rank's output (q's dtype), and with
    return_lse its LSE [B, Hq, S_local] (float32, float64 for float64
    inputs).

    Differentiable in q, k, v and sinks (the backward runs the ring again;
    dK/dV and dsinks are the gradients of the sum of every rank's loss).
    `blocks`: the block kernel (GpuBlocks(bundles) for CUDA tensors when
    None, TorchBlocks() otherwise); see the module's docstring. ValueError
    for inputs the ring cannot take (a local length that is not two equal
    chunks, a window that does not map onto the blocks, ...)."""
    import torch

    global _function
    if blocks is None:
        blocks = GpuBlocks(bundles) if q.is_cuda else TorchBlocks()
    if window is not None:
        window = tuple(int(x) for x in window)
    opts = _Options(causal, window, softcap, scale, layout, group, blocks)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (q, k, v, sinks))
    if needs_grad:
        if _function is None:
            _function = _make_function()
        out, lse = _function.apply(q, k, v, sinks, opts)
    else:
        out, lse = _ring_forward(q, k, v, sinks, opts)
    return (out, lse) if return_lse else out
