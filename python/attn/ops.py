# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attn's GPU entry points as PyTorch custom operators (torch.library).

    import attn.ops
    out = attn.ops.attention(q, k, v, causal=True)       # torch.ops.attn.attention
    compiled = torch.compile(model, fullgraph=True)       # traces through it

Each op (`attn::attention`, `attn::paged_attention`, `attn::sparse_attention`,
`attn::lightning_indexer`, `attn::nsa`, `attn::gated_delta_rule`) runs the
function of the same name in attn.gpu on CUDA tensors and has a fake (meta)
implementation that gives its outputs' shapes and dtypes without running
anything, so torch.compile traces a model that calls attn without a graph
break, and FakeTensor / torch.export see through it. Ops return a fixed tuple
of tensors (an empty tensor where attn.gpu returns nothing, e.g. the LSE
when not asked for); the wrappers below give attn.gpu's return values.

Kernels come from $ATTN_BUNDLES (attn.gpu) or are compiled on first use
(attn.jit). Importing this module needs torch.

The ops are registered with torch.library's low-level API: `Library.define`
with the schema torch.library.infer_schema gives the annotated function
(what torch.library.custom_op would register), `Library.impl` for the CUDA
and CPU dispatch keys (CPU tensors reach attn.gpu, which says they must be
CUDA tensors), and `register_fake`. A call then goes from the dispatcher
straight to the function; custom_op's Python layer (backend_impl and its
autograd kernel) cost about 40 us per call. ATTN_OPS_CUSTOM_OP=1, read at
import, registers them with custom_op instead, as before. `attn::attention`
is differentiable: torch.library.register_autograd gives it
`attn::attention_backward` (attn.gpu.attention_backward) as its backward.
"""

import os
from typing import List, Optional, Tuple

import torch

from . import gpu

__all__ = ["attention", "attention_backward", "paged_attention", "sparse_attention", "lightning_indexer", "nsa",
           "gated_delta_rule"]

Tensor = torch.Tensor

# "1": register with torch.library.custom_op (the registration before the
# low-level one; kept to compare and to fall back on).
_CUSTOM_OP = os.environ.get("ATTN_OPS_CUSTOM_OP", "0") == "1"
# The library that holds the registrations; they last as long as it does.
_lib = None if _CUSTOM_OP else torch.library.Library("attn", "FRAGMENT")


def _op(name, fake):
    """Registers the annotated function as the op attn::<name>, with `fake`
    as its fake (meta) implementation; returns its OpOverload."""
    def register(fn):
        if _CUSTOM_OP:
            op = torch.library.custom_op(f"attn::{name}", mutates_args=())(fn)
            op.register_fake(fake)
        else:
            _lib.define(name + torch.library.infer_schema(fn, mutates_args=()))
            for key in ("CUDA", "CPU"):
                _lib.impl(name, fn, key)
            torch.library.register_fake(f"attn::{name}", fake, lib=_lib)
        return getattr(torch.ops.attn, name).default
    return register


# --------------------------------------------------------------------------
# attention


def _attention_fake(q, k, v, causal, window, softcap, scale, bias, sinks, layout, return_lse):
    dv = v.shape[-1]
    if layout == "bhsd":
        b, hq, sq, _ = q.shape
        out = q.new_empty((b, hq, sq, dv))
    else:
        b, sq, hq, _ = q.shape
        out = q.new_empty((b, sq, hq, dv))
    lse = q.new_empty((b, hq, sq), dtype=torch.float32) if return_lse else q.new_empty(0)
    return out, lse


@_op("attention", _attention_fake)
def _attention(q: Tensor, k: Tensor, v: Tensor, causal: bool, window: Optional[List[int]],
               softcap: Optional[float], scale: Optional[float], bias: Optional[Tensor],
               sinks: Optional[Tensor], layout: str, return_lse: bool) -> Tuple[Tensor, Tensor]:
    r = gpu._call_attention(q, k, v, causal, window, softcap, scale, bias, sinks, layout,
                            return_lse, None, None)
    return r if return_lse else (r, q.new_empty(0))


def _attention_backward_fake(do, q, k, v, out, lse, causal, window, softcap, scale, bias, sinks,
                             layout):
    return (q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape),
            sinks.new_empty(sinks.shape) if sinks is not None else q.new_empty(0))


@_op("attention_backward", _attention_backward_fake)
def _attention_backward(do: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                        causal: bool, window: Optional[List[int]], softcap: Optional[float],
                        scale: Optional[float], bias: Optional[Tensor], sinks: Optional[Tensor],
                        layout: str) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    grads = gpu.attention_backward(do, q, k, v, out, lse, causal=causal, window=window,
                                   softcap=softcap, scale=scale, bias=bias, sinks=sinks,
                                   layout=layout)
    return grads if sinks is not None else grads + (q.new_empty(0),)


def _attention_setup_context(ctx, inputs, output):
    q, k, v, causal, window, softcap, scale, bias, sinks, layout, _ = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, bias, sinks)
    ctx.options = (causal, window, softcap, scale, layout)


def _attention_autograd(ctx, dout, dlse):
    q, k, v, out, lse, bias, sinks = ctx.saved_tensors
    causal, window, softcap, scale, layout = ctx.options
    if lse.numel() == 0 and q.numel():
        raise RuntimeError("attn::attention was called without its LSE where autograd records "
                           "it; call attn.ops.attention, which asks for the LSE then")
    dq, dk, dv, dsinks = _attention_backward(dout.contiguous(), q, k, v, out, lse, causal,
                                             window, softcap, scale, bias, sinks, layout)
    return (dq, dk, dv, None, None, None, None, None,
            dsinks if sinks is not None else None, None, None)


torch.library.register_autograd("attn::attention", _attention_autograd,
                                setup_context=_attention_setup_context, lib=_lib)


def attention_backward(do, q, k, v, out, lse, *, causal=False, window=None, softcap=None,
                       scale=None, bias=None, sinks=None, layout="bhsd"):
    """torch.ops.attn.attention_backward: attn.gpu.attention_backward as a
    custom op; (dq, dk, dv) and dsinks with sinks."""
    dq, dk, dv, dsinks = _attention_backward(
        do, q, k, v, out, lse, causal, None if window is None else list(window), softcap,
        scale, bias, sinks, layout)
    return (dq, dk, dv, dsinks) if sinks is not None else (dq, dk, dv)


def attention(q, k, v, *, causal=False, window=None, softcap=None, scale=None, bias=None,
              sinks=None, layout="bhsd", return_lse=False):
    """torch.ops.attn.attention: attn.gpu.attention as a custom op,
    differentiable (attn::attention_backward): where autograd records the
    call, the LSE the backward needs is computed too."""
    lse_needed = return_lse or gpu._records_grad(q, k, v, sinks)
    out, lse = _attention(q, k, v, causal, None if window is None else list(window), softcap,
                          scale, bias, sinks, layout, lse_needed)
    return (out, lse) if return_lse else out


# --------------------------------------------------------------------------
# paged attention


def _paged_attention_fake(q, k_cache, v_cache, block_table, seq_lens, causal, window, softcap,
                          scale, sinks, cache_layout, return_lse, num_splits):
    dv = v_cache.shape[-1]
    out = q.new_empty((*q.shape[:-1], dv))
    if not return_lse:
        return out, q.new_empty(0)
    if q.dim() == 3:
        return out, q.new_empty((q.shape[0], q.shape[1]), dtype=torch.float32)
    b, sq, hq, _ = q.shape
    return out, q.new_empty((b, hq, sq), dtype=torch.float32)


@_op("paged_attention", _paged_attention_fake)
def _paged_attention(q: Tensor, k_cache: Tensor, v_cache: Tensor, block_table: Tensor,
                     seq_lens: Tensor, causal: bool, window: Optional[List[int]],
                     softcap: Optional[float], scale: Optional[float], sinks: Optional[Tensor],
                     cache_layout: str, return_lse: bool,
                     num_splits: Optional[int]) -> Tuple[Tensor, Tensor]:
    r = gpu.paged_attention(q, k_cache, v_cache, block_table, seq_lens, causal=causal,
                            window=window, softcap=softcap, scale=scale, sinks=sinks,
                            cache_layout=cache_layout, return_lse=return_lse,
                            num_splits_override=num_splits)
    return r if return_lse else (r, q.new_empty(0))


def paged_attention(q, k_cache, v_cache, block_table, seq_lens, *, causal=False, window=None,
                    softcap=None, scale=None, sinks=None, cache_layout="nhd", return_lse=False,
                    num_splits_override=None):
    """torch.ops.attn.paged_attention: attn.gpu.paged_attention as a custom op."""
    out, lse = _paged_attention(
        q, k_cache, v_cache, block_table, seq_lens, causal,
        None if window is None else list(window), softcap, scale, sinks, cache_layout,
        return_lse, num_splits_override)
    return (out, lse) if return_lse else out


# --------------------------------------------------------------------------
# sparse attention, the lightning indexer and NSA


def _sparse_attention_fake(q, k, v, indices, block_size, causal, scale, softcap, sinks,
                           return_lse):
    b, sq, hq, _ = q.shape
    out = q.new_empty((b, sq, hq, v.shape[-1]))
    lse = q.new_empty((b, hq, sq), dtype=torch.float32) if return_lse else q.new_empty(0)
    return out, lse


@_op("sparse_attention", _sparse_attention_fake)
def _sparse_attention(q: Tensor, k: Tensor, v: Tensor, indices: Tensor, block_size: int,
                      causal: bool, scale: Optional[float], softcap: Optional[float],
                      sinks: Optional[Tensor], return_lse: bool) -> Tuple[Tensor, Tensor]:
    r = gpu.sparse_attention(q, k, v, indices, block_size=block_size, causal=causal,
                             scale=scale, softcap=softcap, sinks=sinks, return_lse=return_lse)
    return r if return_lse else (r, q.new_empty(0))


def sparse_attention(q, k, v, indices, *, block_size=1, causal=False, scale=None, softcap=None,
                     sinks=None, return_lse=False):
    """torch.ops.attn.sparse_attention: attn.gpu.sparse_attention as a custom op."""
    out, lse = _sparse_attention(q, k, v, indices, block_size, causal, scale, softcap, sinks,
                                 return_lse)
    return (out, lse) if return_lse else out


def _lightning_indexer_fake(q, k, weights, top_k, causal, window):
    b, sq = q.shape[0], q.shape[1]
    return (q.new_empty((b, sq, top_k), dtype=torch.int32),
            q.new_empty((b, sq, k.shape[1]), dtype=torch.float32))


@_op("lightning_indexer", _lightning_indexer_fake)
def _lightning_indexer(q: Tensor, k: Tensor, weights: Tensor, top_k: int, causal: bool,
                       window: Optional[List[int]]) -> Tuple[Tensor, Tensor]:
    return gpu.lightning_indexer(q, k, weights, top_k, causal=causal, window=window,
                                 return_scores=True)


def lightning_indexer(q, k, weights, top_k, *, causal=False, window=None, return_scores=False):
    """torch.ops.attn.lightning_indexer: attn.gpu.lightning_indexer as a custom op."""
    indices, scores = _lightning_indexer(q, k, weights, top_k, causal,
                                         None if window is None else list(window))
    return (indices, scores) if return_scores else indices


def _nsa_fake(q, k, v, k_cmp, v_cmp, gates, cmp_block, cmp_stride, sel_block, num_selected,
              window, initial_blocks, local_blocks, scale, page_size):
    b, t = q.shape[0], q.shape[1]
    # The output has the values' head dim (D != Dv: the NSA paper's 192 / 128).
    return (q.new_empty((*q.shape[:3], v.shape[3])),
            q.new_empty((b, t, k.shape[2], num_selected), dtype=torch.int32))


@_op("nsa", _nsa_fake)
def _nsa(q: Tensor, k: Tensor, v: Tensor, k_cmp: Tensor, v_cmp: Tensor, gates: Tensor,
         cmp_block: int, cmp_stride: int, sel_block: int, num_selected: int, window: int,
         initial_blocks: int, local_blocks: int, scale: Optional[float],
         page_size: int) -> Tuple[Tensor, Tensor]:
    return gpu.nsa(q, k, v, k_cmp, v_cmp, gates, cmp_block=cmp_block, cmp_stride=cmp_stride,
                   sel_block=sel_block, num_selected=num_selected, window=window,
                   initial_blocks=initial_blocks, local_blocks=local_blocks, scale=scale,
                   page_size=page_size, return_indices=True)


def nsa(q, k, v, k_cmp, v_cmp, gates, *, cmp_block, cmp_stride, sel_block, num_selected, window,
        initial_blocks=1, local_blocks=2, scale=None, page_size=64, return_indices=False):
    """torch.ops.attn.nsa: attn.gpu.nsa as a custom op."""
    out, indices = _nsa(q, k, v, k_cmp, v_cmp, gates, cmp_block, cmp_stride, sel_block,
                        num_selected, window, initial_blocks, local_blocks, scale, page_size)
    return (out, indices) if return_indices else out


# --------------------------------------------------------------------------
# gated delta rule


def _gated_delta_rule_fake(q, k, v, g, beta, initial_state, qk_l2norm, scale, path):
    b, hv, dk, dv = q.shape[0], v.shape[2], q.shape[3], v.shape[3]
    return v.new_empty(v.shape, dtype=q.dtype), q.new_empty((b, hv, dk, dv), dtype=torch.float32)


@_op("gated_delta_rule", _gated_delta_rule_fake)
def _gated_delta_rule(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor,
                      initial_state: Optional[Tensor], qk_l2norm: bool, scale: Optional[float],
                      path: str) -> Tuple[Tensor, Tensor]:
    return gpu.gated_delta_rule(q, k, v, g, beta, initial_state=initial_state,
                                qk_l2norm=qk_l2norm, scale=scale, path=path)


def gated_delta_rule(q, k, v, g, beta, *, initial_state=None, qk_l2norm=False, scale=None,
                     path="auto"):
    """torch.ops.attn.gated_delta_rule: attn.gpu.gated_delta_rule as a custom op."""
    return _gated_delta_rule(q, k, v, g, beta, initial_state, qk_l2norm, scale, path)
