// RUN: attn-opt %s -split-input-file -verify-diagnostics
// One case per diagnostic of attn.attention and #attn.mask.

func.func @query_element_type(%q: tensor<1x4x8x32xf64>) {
  // expected-error @+1 {{query element type must be f16, bf16, f32 or f8E4M3FN, got 'f64'}}
  %o = attn.attention %q, %q, %q : (tensor<1x4x8x32xf64>, tensor<1x4x8x32xf64>, tensor<1x4x8x32xf64>) -> tensor<1x4x8x32xf64>
  return
}

// -----

func.func @query_rank(%q: tensor<4x8x32xf16>) {
  // expected-error @+1 {{query must be a rank-4 tensor [B, H, S, D] (layout bhsd), got rank 3}}
  %o = attn.attention %q, %q, %q : (tensor<4x8x32xf16>, tensor<4x8x32xf16>, tensor<4x8x32xf16>) -> tensor<4x8x32xf16>
  return
}

// -----

func.func @key_rank_bshd(%q: tensor<1x8x4x32xf16>, %k: tensor<8x4x32xf16>) {
  // expected-error @+1 {{key must be a rank-4 tensor [B, S, H, D] (layout bshd), got rank 3}}
  %o = attn.attention %q, %k, %k layout = bshd : (tensor<1x8x4x32xf16>, tensor<8x4x32xf16>, tensor<8x4x32xf16>) -> tensor<1x8x4x32xf16>
  return
}

// -----

func.func @value_rank(%q: tensor<1x4x8x32xf16>, %v: tensor<1x4x8x32x1xf16>) {
  // expected-error @+1 {{value must be a rank-4 tensor [B, H, S, D] (layout bhsd), got rank 5}}
  %o = attn.attention %q, %q, %v : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32x1xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @output_rank(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{output must be a rank-4 tensor [B, H, S, D] (layout bhsd), got rank 2}}
  %o = attn.attention %q, %q, %q : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<8x32xf16>
  return
}

// -----

func.func @mixed_element_types(%q: tensor<1x4x8x32xbf16>, %k: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{key element type 'f16' does not match query element type 'bf16'}}
  %o = attn.attention %q, %k, %k : (tensor<1x4x8x32xbf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @output_element_type(%q: tensor<1x4x8x32xbf16>) {
  // expected-error @+1 {{output element type 'f32' does not match query element type 'bf16'}}
  %o = attn.attention %q, %q, %q : (tensor<1x4x8x32xbf16>, tensor<1x4x8x32xbf16>, tensor<1x4x8x32xbf16>) -> tensor<1x4x8x32xf32>
  return
}

// -----

func.func @key_batch(%q: tensor<2x4x8x32xf16>, %k: tensor<3x4x8x32xf16>) {
  // expected-error @+1 {{key batch size (3) must equal query batch size (2)}}
  %o = attn.attention %q, %k, %k : (tensor<2x4x8x32xf16>, tensor<3x4x8x32xf16>, tensor<3x4x8x32xf16>) -> tensor<2x4x8x32xf16>
  return
}

// -----

func.func @value_batch(%q: tensor<2x4x8x32xf16>, %v: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{value batch size (1) must equal query batch size (2)}}
  %o = attn.attention %q, %q, %v : (tensor<2x4x8x32xf16>, tensor<2x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<2x4x8x32xf16>
  return
}

// -----

func.func @value_heads(%q: tensor<1x8x8x32xf16>, %k: tensor<1x4x8x32xf16>, %v: tensor<1x2x8x32xf16>) {
  // expected-error @+1 {{value head count (2) must equal key head count (4)}}
  %o = attn.attention %q, %k, %v : (tensor<1x8x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x2x8x32xf16>) -> tensor<1x8x8x32xf16>
  return
}

// -----

func.func @zero_kv_heads(%q: tensor<1x8x8x32xf16>, %k: tensor<1x0x8x32xf16>) {
  // expected-error @+1 {{key must have at least one head}}
  %o = attn.attention %q, %k, %k : (tensor<1x8x8x32xf16>, tensor<1x0x8x32xf16>, tensor<1x0x8x32xf16>) -> tensor<1x8x8x32xf16>
  return
}

// -----

func.func @group_not_divisible(%q: tensor<1x32x8x64xf16>, %k: tensor<1x6x8x64xf16>) {
  // expected-error @+1 {{query head count (32) must be a multiple of the key/value head count (6)}}
  %o = attn.attention %q, %k, %k : (tensor<1x32x8x64xf16>, tensor<1x6x8x64xf16>, tensor<1x6x8x64xf16>) -> tensor<1x32x8x64xf16>
  return
}

// -----

func.func @more_kv_heads_than_query_heads(%q: tensor<1x4x8x64xf16>, %k: tensor<1x8x8x64xf16>) {
  // expected-error @+1 {{query head count (4) must be a multiple of the key/value head count (8)}}
  %o = attn.attention %q, %k, %k : (tensor<1x4x8x64xf16>, tensor<1x8x8x64xf16>, tensor<1x8x8x64xf16>) -> tensor<1x4x8x64xf16>
  return
}

// -----

func.func @value_seq_len(%q: tensor<1x4x8x32xf16>, %k: tensor<1x4x16x32xf16>, %v: tensor<1x4x15x32xf16>) {
  // expected-error @+1 {{value sequence length (15) must equal key sequence length (16)}}
  %o = attn.attention %q, %k, %v : (tensor<1x4x8x32xf16>, tensor<1x4x16x32xf16>, tensor<1x4x15x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @head_dim(%q: tensor<1x4x8x128xf16>, %k: tensor<1x4x8x64xf16>) {
  // expected-error @+1 {{key head dim (64) must equal query head dim (128)}}
  %o = attn.attention %q, %k, %k : (tensor<1x4x8x128xf16>, tensor<1x4x8x64xf16>, tensor<1x4x8x64xf16>) -> tensor<1x4x8x64xf16>
  return
}

// -----

func.func @zero_head_dim(%q: tensor<1x4x8x0xf16>) {
  // expected-error @+1 {{query head dim must be positive}}
  %o = attn.attention %q, %q, %q : (tensor<1x4x8x0xf16>, tensor<1x4x8x0xf16>, tensor<1x4x8x0xf16>) -> tensor<1x4x8x0xf16>
  return
}

// -----

func.func @zero_value_head_dim(%q: tensor<1x4x8x32xf16>, %v: tensor<1x4x8x0xf16>) {
  // expected-error @+1 {{value head dim must be positive}}
  %o = attn.attention %q, %q, %v : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x0xf16>) -> tensor<1x4x8x0xf16>
  return
}

// -----

func.func @output_shape(%q: tensor<1x4x8x192xbf16>, %v: tensor<1x4x8x128xbf16>) {
  // expected-error @+1 {{output shape 'tensor<1x4x8x192xbf16>' is incompatible with the expected 'tensor<1x4x8x128xbf16>' (query shape with the value head dim)}}
  %o = attn.attention %q, %q, %v : (tensor<1x4x8x192xbf16>, tensor<1x4x8x192xbf16>, tensor<1x4x8x128xbf16>) -> tensor<1x4x8x192xbf16>
  return
}

// -----

func.func @bias_rank(%q: tensor<1x4x8x32xf16>, %b: tensor<8x8xf16>) {
  // expected-error @+1 {{bias must be a rank-4 tensor [B, Hq, Sq, Sk] (size-1 dimensions broadcast), got rank 2}}
  %o = attn.attention %q, %q, %q bias(%b) : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<8x8xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @bias_element_type(%q: tensor<1x4x8x32xf16>, %b: tensor<1x1x8x8xbf16>) {
  // expected-error @+1 {{bias element type 'bf16' must be the query element type ('f16') or f32}}
  %o = attn.attention %q, %q, %q bias(%b) : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x1x8x8xbf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @bias_not_broadcastable(%q: tensor<2x4x8x32xf16>, %k: tensor<2x4x16x32xf16>, %b: tensor<1x1x8x8xf32>) {
  // expected-error @+1 {{bias 'tensor<1x1x8x8xf32>' is not broadcastable to [B, Hq, Sq, Sk] = [2, 4, 8, 16]: dimension 3 (Sk) is 8, expected 1 or 16}}
  %o = attn.attention %q, %k, %k bias(%b) : (tensor<2x4x8x32xf16>, tensor<2x4x16x32xf16>, tensor<2x4x16x32xf16>, tensor<1x1x8x8xf32>) -> tensor<2x4x8x32xf16>
  return
}

// -----

// Bias dimensions are [B, Hq, Sq, Sk] even in the bshd layout.
func.func @bias_heads_bshd(%q: tensor<1x8x4x32xf16>, %b: tensor<1x8x8x8xf32>) {
  // expected-error @+1 {{dimension 1 (Hq) is 8, expected 1 or 4}}
  %o = attn.attention %q, %q, %q bias(%b) layout = bshd : (tensor<1x8x4x32xf16>, tensor<1x8x4x32xf16>, tensor<1x8x4x32xf16>, tensor<1x8x8x8xf32>) -> tensor<1x8x4x32xf16>
  return
}

// -----

func.func @sinks_shape(%q: tensor<1x4x8x32xf16>, %s: tensor<8xf32>) {
  // expected-error @+1 {{sinks must be a rank-1 tensor of the query head count (4), got 'tensor<8xf32>'}}
  %o = attn.attention %q, %q, %q sinks(%s) : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<8xf32>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @sinks_element_type(%q: tensor<1x4x8x32xf16>, %s: tensor<4xbf16>) {
  // expected-error @+1 {{sinks element type 'bf16' must be the query element type ('f16') or f32}}
  %o = attn.attention %q, %q, %q sinks(%s) : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<4xbf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @lse_shape(%q: tensor<2x4x8x32xf16>) {
  // expected-error @+1 {{lse result must be 'tensor<2x4x8xf32>' ([B, Hq, Sq], f32), got 'tensor<2x8x4xf32>'}}
  %o, %l = attn.attention %q, %q, %q : (tensor<2x4x8x32xf16>, tensor<2x4x8x32xf16>, tensor<2x4x8x32xf16>) -> (tensor<2x4x8x32xf16>, tensor<2x8x4xf32>)
  return
}

// -----

func.func @lse_element_type(%q: tensor<2x4x8x32xf16>) {
  // expected-error @+1 {{lse result must be 'tensor<2x4x8xf32>' ([B, Hq, Sq], f32), got 'tensor<2x4x8xf16>'}}
  %o, %l = attn.attention %q, %q, %q : (tensor<2x4x8x32xf16>, tensor<2x4x8x32xf16>, tensor<2x4x8x32xf16>) -> (tensor<2x4x8x32xf16>, tensor<2x4x8xf16>)
  return
}

// -----

func.func @lse_shape_bshd(%q: tensor<2x8x4x32xf16>) {
  // expected-error @+1 {{lse result must be 'tensor<2x4x8xf32>' ([B, Hq, Sq], f32), got 'tensor<2x8x4xf32>'}}
  %o, %l = attn.attention %q, %q, %q layout = bshd : (tensor<2x8x4x32xf16>, tensor<2x8x4x32xf16>, tensor<2x8x4x32xf16>) -> (tensor<2x8x4x32xf16>, tensor<2x8x4xf32>)
  return
}

// -----

func.func @negative_scale(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{scale must be a positive finite number, got -1.250000e-01}}
  %o = attn.attention %q, %q, %q scale = -0.125 : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @zero_scale(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{scale must be a positive finite number, got 0.000000e+00}}
  %o = attn.attention %q, %q, %q scale = 0.0 : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @nan_scale(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{scale must be a positive finite number, got nan}}
  %o = attn.attention %q, %q, %q scale = 0x7FC00000 : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @zero_softcap(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{softcap must be a positive finite number, got 0.000000e+00}}
  %o = attn.attention %q, %q, %q softcap = 0.0 : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @negative_softcap(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{softcap must be a positive finite number, got -3.000000e+01}}
  %o = attn.attention %q, %q, %q softcap = -30.0 : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @negative_window_left(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{window extents must be non-negative, got left = -1, right = 0}}
  %o = attn.attention %q, %q, %q mask = <window, left = -1, right = 0> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @negative_window_right(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{window extents must be non-negative, got left = 16, right = -3}}
  %o = attn.attention %q, %q, %q mask = <window, left = 16, right = -3> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @window_without_extents(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{expected ','}}
  %o = attn.attention %q, %q, %q mask = <window> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @causal_with_extents(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{expected '>'}}
  %o = attn.attention %q, %q, %q mask = <causal, left = 3, right = 0> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @unknown_mask_kind(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{unknown mask kind 'chunked'; expected 'none', 'causal' or 'window'}}
  %o = attn.attention %q, %q, %q mask = <chunked> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @unknown_layout(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+2 {{expected ::mlir::attn::Layout to be one of: bhsd, bshd}}
  // expected-error @+1 {{failed to parse Attn_LayoutAttr parameter 'value' which is to be a `::mlir::attn::Layout`}}
  %o = attn.attention %q, %q, %q layout = sbhd : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @unranked(%q: tensor<*xf16>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of any type values, but got 'tensor<*xf16>'}}
  %o = attn.attention %q, %q, %q : (tensor<*xf16>, tensor<*xf16>, tensor<*xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @generic_missing_operand(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{expected 3 or more operands, but found 2}}
  %o = "attn.attention"(%q, %q) <{operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0>}> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @generic_wrong_mask_attr(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{invalid properties}}
  %o = "attn.attention"(%q, %q, %q) <{operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0>, mask = 3 : i64}> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @generic_no_results(%q: tensor<1x4x8x32xf16>) {
  // expected-error @+1 {{expected 1 or more results}}
  "attn.attention"(%q, %q, %q) <{operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0>}> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>) -> ()
  return
}

// -----

func.func @position_offset_without_mask(%q: tensor<1x4x8x32xf16>, %off: index) {
  // expected-error @+1 {{position_offset takes a causal or window mask (a mask of none admits every key whatever the offset)}}
  %o = attn.attention %q, %q, %q position_offset(%off) : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, index) -> tensor<1x4x8x32xf16>
  return
}

// -----

func.func @position_offset_not_index(%q: tensor<1x4x8x32xf16>, %off: i64) {
  // expected-error @+1 {{operand #3 must be index, but got 'i64'}}
  %o = attn.attention %q, %q, %q position_offset(%off) mask = <causal> : (tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, tensor<1x4x8x32xf16>, i64) -> tensor<1x4x8x32xf16>
  return
}
