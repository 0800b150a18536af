// Attention variants of current models, as attn.attention ops.
//   build/bin/attn-opt examples/variants.mlir
// parses, verifies and prints them.

// Llama-3.1-8B prefill: grouped-query attention (32 query heads, 8 KV heads),
// causal, in the [B, S, H, D] layout that frontends use.
func.func @llama3_8b_prefill(%q: tensor<1x4096x32x128xbf16>, %k: tensor<1x4096x8x128xbf16>,
                             %v: tensor<1x4096x8x128xbf16>) -> tensor<1x4096x32x128xbf16> {
  %o = attn.attention %q, %k, %v layout = bshd mask = <causal>
      : (tensor<1x4096x32x128xbf16>, tensor<1x4096x8x128xbf16>, tensor<1x4096x8x128xbf16>)
      -> tensor<1x4096x32x128xbf16>
  return %o : tensor<1x4096x32x128xbf16>
}

// Mistral-7B: a causal sliding window of 4096 tokens keeps keys
// [p - 4095, p] for the query at position p.
func.func @mistral_sliding_window(%q: tensor<1x32x8192x128xf16>, %k: tensor<1x8x8192x128xf16>,
                                  %v: tensor<1x8x8192x128xf16>) -> tensor<1x32x8192x128xf16> {
  %o = attn.attention %q, %k, %v mask = <window, left = 4095, right = 0>
      : (tensor<1x32x8192x128xf16>, tensor<1x8x8192x128xf16>, tensor<1x8x8192x128xf16>)
      -> tensor<1x32x8192x128xf16>
  return %o : tensor<1x32x8192x128xf16>
}

// Gemma-2: logit soft-capping at 50 and a local window of 4096 (left 4095).
func.func @gemma2_local(%q: tensor<1x16x4096x256xbf16>, %k: tensor<1x8x4096x256xbf16>,
                        %v: tensor<1x8x4096x256xbf16>) -> tensor<1x16x4096x256xbf16> {
  %o = attn.attention %q, %k, %v mask = <window, left = 4095, right = 0>
      scale = 0.0625 softcap = 50.0
      : (tensor<1x16x4096x256xbf16>, tensor<1x8x4096x256xbf16>, tensor<1x8x4096x256xbf16>)
      -> tensor<1x16x4096x256xbf16>
  return %o : tensor<1x16x4096x256xbf16>
}

// GPT-OSS: per-head attention sinks and a 128-token window, 64 query heads
// over 8 KV heads, head dim 64.
func.func @gpt_oss_sinks(%q: tensor<1x64x2048x64xbf16>, %k: tensor<1x8x2048x64xbf16>,
                         %v: tensor<1x8x2048x64xbf16>, %sinks: tensor<64xbf16>)
    -> tensor<1x64x2048x64xbf16> {
  %o = attn.attention %q, %k, %v sinks(%sinks) mask = <window, left = 127, right = 0>
      : (tensor<1x64x2048x64xbf16>, tensor<1x8x2048x64xbf16>, tensor<1x8x2048x64xbf16>,
         tensor<64xbf16>)
      -> tensor<1x64x2048x64xbf16>
  return %o : tensor<1x64x2048x64xbf16>
}

// Decode: one new token per sequence against an 8k-token cache; bottom-right
// alignment makes "causal" admit the whole cache. Multi-query (1 KV head).
func.func @mqa_decode(%q: tensor<8x32x1x128xf16>, %k: tensor<8x1x8192x128xf16>,
                      %v: tensor<8x1x8192x128xf16>) -> tensor<8x32x1x128xf16> {
  %o = attn.attention %q, %k, %v mask = <causal>
      : (tensor<8x32x1x128xf16>, tensor<8x1x8192x128xf16>, tensor<8x1x8192x128xf16>)
      -> tensor<8x32x1x128xf16>
  return %o : tensor<8x32x1x128xf16>
}

// DeepSeek-V3 MLA prefill: qk head dim 192 (128 + 64 rope), v head dim 128,
// 128 heads, explicit scale; the LSE is returned for chunked prefill.
func.func @deepseek_mla_prefill(%q: tensor<1x128x2048x192xbf16>, %k: tensor<1x128x2048x192xbf16>,
                                %v: tensor<1x128x2048x128xbf16>)
    -> (tensor<1x128x2048x128xbf16>, tensor<1x128x2048xf32>) {
  %o, %lse = attn.attention %q, %k, %v mask = <causal> scale = 0.1352
      : (tensor<1x128x2048x192xbf16>, tensor<1x128x2048x192xbf16>, tensor<1x128x2048x128xbf16>)
      -> (tensor<1x128x2048x128xbf16>, tensor<1x128x2048xf32>)
  return %o, %lse : tensor<1x128x2048x128xbf16>, tensor<1x128x2048xf32>
}

// BERT-style encoder: bidirectional, with an additive padding mask broadcast
// over heads and query rows, f32.
func.func @encoder_padding_bias(%q: tensor<4x12x512x64xf32>, %k: tensor<4x12x512x64xf32>,
                                %v: tensor<4x12x512x64xf32>, %pad: tensor<4x1x1x512xf32>)
    -> tensor<4x12x512x64xf32> {
  %o = attn.attention %q, %k, %v bias(%pad)
      : (tensor<4x12x512x64xf32>, tensor<4x12x512x64xf32>, tensor<4x12x512x64xf32>,
         tensor<4x1x1x512xf32>)
      -> tensor<4x12x512x64xf32>
  return %o : tensor<4x12x512x64xf32>
}
