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

// The Llama heads in FP8 (FlashAttention-3's forward): e4m3 Q, K, V with
// descales per (batch, KV head) and a bf16 output, on the sm_90a kernel. The
// program's C ABI has no 8-bit float type, so the tensors come in as their
// bytes (i8; from torch, x.view(torch.int8)) and are bitcast back.
func.func @attention_fp8(%q: tensor<?x32x?x128xi8>, %k: tensor<?x8x?x128xi8>, %v: tensor<?x8x?x128xi8>, %dq: tensor<?x8xf32>, %dk: tensor<?x8xf32>, %dv: tensor<?x8xf32>) -> tensor<?x32x?x128xbf16> {
  %q8 = arith.bitcast %q : tensor<?x32x?x128xi8> to tensor<?x32x?x128xf8E4M3FN>
  %k8 = arith.bitcast %k : tensor<?x8x?x128xi8> to tensor<?x8x?x128xf8E4M3FN>
  %v8 = arith.bitcast %v : tensor<?x8x?x128xi8> to tensor<?x8x?x128xf8E4M3FN>
  %o = attn.attention %q8, %k8, %v8 descale(%dq, %dk, %dv) mask = <causal> scale = 0.0883883461 : (tensor<?x32x?x128xf8E4M3FN>, tensor<?x8x?x128xf8E4M3FN>, tensor<?x8x?x128xf8E4M3FN>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x32x?x128xbf16>
  return %o : tensor<?x32x?x128xbf16>
}
