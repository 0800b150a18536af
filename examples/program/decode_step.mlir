// The two decode-time kernels of a hybrid model as a program: paged
// attention over a KV cache (Llama-3.1-8B: 32 query heads over 8 KV heads,
// head dim 128, pages of 16 tokens, bf16) and a Gated DeltaNet layer
// (Qwen3-Next's linear attention: 16 key heads, 32 value heads, head dim
// 128, L2-normalized q and k). Batch, pages, table width and tokens are
// dynamic:
//
//   build/bin/attn-compile --shared examples/program/decode_step.mlir -o build/programs/decode_step.so
//
// The paged call splits the keys as attn.gpu does (from the device's SM
// count, at run time) and merges the splits in a second kernel; the gated
// delta call runs the chunked kernels and returns the final state.
func.func @paged_decode(%q: tensor<?x1x32x128xbf16>, %k_cache: tensor<?x16x8x128xbf16>, %v_cache: tensor<?x16x8x128xbf16>, %block_table: tensor<?x?xi32>, %seq_lens: tensor<?xi32>) -> tensor<?x1x32x128xbf16> {
  %o = attn.paged_attention %q, %k_cache, %v_cache, %block_table, %seq_lens mask = <causal> scale = 0.0883883461 : (tensor<?x1x32x128xbf16>, tensor<?x16x8x128xbf16>, tensor<?x16x8x128xbf16>, tensor<?x?xi32>, tensor<?xi32>) -> tensor<?x1x32x128xbf16>
  return %o : tensor<?x1x32x128xbf16>
}

func.func @gated_delta(%q: tensor<?x?x16x128xbf16>, %k: tensor<?x?x16x128xbf16>, %v: tensor<?x?x32x128xbf16>, %g: tensor<?x?x32xf32>, %beta: tensor<?x?x32xf32>) -> (tensor<?x?x32x128xbf16>, tensor<?x32x128x128xf32>) {
  %o, %state = attn.gated_delta_rule %q, %k, %v, %g, %beta qk_l2norm scale = 0.0883883461 chunk_size = 32 : (tensor<?x?x16x128xbf16>, tensor<?x?x16x128xbf16>, tensor<?x?x32x128xbf16>, tensor<?x?x32xf32>, tensor<?x?x32xf32>) -> (tensor<?x?x32x128xbf16>, tensor<?x32x128x128xf32>)
  return %o, %state : tensor<?x?x32x128xbf16>, tensor<?x32x128x128xf32>
}
