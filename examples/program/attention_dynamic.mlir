// A Llama-3.1-8B attention block with dynamic batch and sequence length:
// GQA (32 query heads over 8 KV heads, head dim 128), causal, bf16, and the
// [B, H, S, D] -> [B, S, H*D] reshape after it. One program serves every
// batch size and length:
//
//   build/bin/attn-compile --shared examples/program/attention_dynamic.mlir -o build/programs/attention_dynamic.so
//
// examples/program/main.c calls it from C, python/attn/program.py from
// PyTorch.
func.func @attention(%q: tensor<?x32x?x128xbf16>, %k: tensor<?x8x?x128xbf16>, %v: tensor<?x8x?x128xbf16>) -> tensor<?x?x4096xbf16> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %o = attn.attention %q, %k, %v mask = <causal> scale = 0.0883883461 : (tensor<?x32x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>) -> tensor<?x32x?x128xbf16>
  %b = tensor.dim %q, %c0 : tensor<?x32x?x128xbf16>
  %s = tensor.dim %q, %c2 : tensor<?x32x?x128xbf16>
  %e = tensor.empty(%b, %s) : tensor<?x?x32x128xbf16>
  %t = linalg.transpose ins(%o : tensor<?x32x?x128xbf16>) outs(%e : tensor<?x?x32x128xbf16>) permutation = [0, 2, 1, 3]
  %r = tensor.collapse_shape %t [[0], [1], [2, 3]] : tensor<?x?x32x128xbf16> into tensor<?x?x4096xbf16>
  return %r : tensor<?x?x4096xbf16>
}

// The same heads in [B, S, H, D] (the projections' layout, no transpose
// before or after), with Mistral's sliding window of 4096 keys.
func.func @attention_bshd_window(%q: tensor<?x?x32x128xbf16>, %k: tensor<?x?x8x128xbf16>, %v: tensor<?x?x8x128xbf16>) -> tensor<?x?x4096xbf16> {
  %o = attn.attention %q, %k, %v layout = bshd mask = <window, left = 4095, right = 0> scale = 0.0883883461 : (tensor<?x?x32x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8x128xbf16>) -> tensor<?x?x32x128xbf16>
  %r = tensor.collapse_shape %o [[0], [1], [2, 3]] : tensor<?x?x32x128xbf16> into tensor<?x?x4096xbf16>
  return %r : tensor<?x?x4096xbf16>
}
