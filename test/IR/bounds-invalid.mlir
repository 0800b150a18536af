// RUN: attn-opt %s -split-input-file -verify-diagnostics
// Sizes every lowering's index arithmetic takes without overflow (dims and
// size attributes at most 2^31 - 1, tensors at most 2^48 elements), operand
// groups of the generic form, zero head counts, and result dims fixed by an
// attribute: each a located diagnostic at parse time.

func.func @generic_segments(%q: tensor<1x2x16x64xf16>) {
  // expected-error @+1 {{'attn.attention' op operandSegmentSizes gives query 3 operands, expected 1}}
  %o = "attn.attention"(%q, %q, %q) <{operandSegmentSizes = array<i32: 3, 0, 0, 0, 0, 0, 0>}> : (tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16>
  return
}

// -----

func.func @generic_segments_optional(%q: tensor<1x2x16x64xf16>) {
  // expected-error @+1 {{'attn.attention' op operandSegmentSizes gives value 0 operands, expected 1}}
  %o = "attn.attention"(%q, %q, %q) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 0, 0, 0>}> : (tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16>
  return
}

// -----

func.func @huge_dim(%q: tensor<1x2x4294967296x64xf16>) {
  // expected-error @+1 {{dimension of size 4294967296 in 'tensor<1x2x4294967296x64xf16>' exceeds the largest size attn takes (2^31 - 1)}}
  %o = attn.attention %q, %q, %q : (tensor<1x2x4294967296x64xf16>, tensor<1x2x4294967296x64xf16>, tensor<1x2x4294967296x64xf16>) -> tensor<1x2x4294967296x64xf16>
  return
}

// -----

func.func @huge_elements(%q: tensor<65536x65536x65536x2xf16>) {
  // expected-error @+1 {{'tensor<65536x65536x65536x2xf16>' has more than 2^48 elements}}
  %o = attn.attention %q, %q, %q : (tensor<65536x65536x65536x2xf16>, tensor<65536x65536x65536x2xf16>, tensor<65536x65536x65536x2xf16>) -> tensor<65536x65536x65536x2xf16>
  return
}

// -----

func.func @huge_table(%q: tensor<2x1x4x64xf16>, %kc: tensor<8x16x2x64xf16>, %t: tensor<2x9223372036854775806xi32>, %l: tensor<2xi32>) {
  // expected-error @+1 {{dimension of size 9223372036854775806}}
  %o = attn.paged_attention %q, %kc, %kc, %t, %l : (tensor<2x1x4x64xf16>, tensor<8x16x2x64xf16>, tensor<8x16x2x64xf16>, tensor<2x9223372036854775806xi32>, tensor<2xi32>) -> tensor<2x1x4x64xf16>
  return
}

// -----

func.func @zero_query_heads(%q: tensor<1x2x0x64xf16>, %k: tensor<1x16x2x64xf16>) {
  // expected-error @+1 {{query must have at least one head}}
  %o = attn.attention %q, %k, %k layout = bshd : (tensor<1x2x0x64xf16>, tensor<1x16x2x64xf16>, tensor<1x16x2x64xf16>) -> tensor<1x2x0x64xf16>
  return
}

// -----

func.func @nsa_zero_query_heads(%q: tensor<1x64x0x16xf32>, %k: tensor<1x64x1x16xf32>, %kc: tensor<1x3x1x16xf32>, %g: tensor<1x64x0x3xf32>) {
  // expected-error @+1 {{query head count must be positive}}
  %o = attn.nsa %q, %k, %k, %kc, %kc, %g cmp_block = 32 cmp_stride = 16 sel_block = 64 num_selected = 4 window = 8 : (tensor<1x64x0x16xf32>, tensor<1x64x1x16xf32>, tensor<1x64x1x16xf32>, tensor<1x3x1x16xf32>, tensor<1x3x1x16xf32>, tensor<1x64x0x3xf32>) -> tensor<1x64x0x16xf32>
  return
}

// -----

func.func @nsa_huge_num_selected(%q: tensor<1x64x4x16xf32>, %k: tensor<1x64x1x16xf32>, %kc: tensor<1x3x1x16xf32>, %g: tensor<1x64x4x3xf32>) {
  // expected-error @+1 {{num_selected must be in [1, 2^31 - 1], got 4611686018427387904}}
  %o = attn.nsa %q, %k, %k, %kc, %kc, %g cmp_block = 32 cmp_stride = 16 sel_block = 64 num_selected = 4611686018427387904 window = 8 : (tensor<1x64x4x16xf32>, tensor<1x64x1x16xf32>, tensor<1x64x1x16xf32>, tensor<1x3x1x16xf32>, tensor<1x3x1x16xf32>, tensor<1x64x4x3xf32>) -> tensor<1x64x4x16xf32>
  return
}

// -----

func.func @nsa_overflowing_forced_blocks(%q: tensor<1x64x4x16xf32>, %k: tensor<1x64x1x16xf32>, %kc: tensor<1x3x1x16xf32>, %g: tensor<1x64x4x3xf32>) {
  // expected-error @+1 {{initial_blocks must be in [0, 2^31 - 1], got 4611686018427387904}}
  %o = attn.nsa %q, %k, %k, %kc, %kc, %g cmp_block = 32 cmp_stride = 16 sel_block = 64 num_selected = 4 window = 8 initial_blocks = 4611686018427387904 local_blocks = 4611686018427387904 : (tensor<1x64x4x16xf32>, tensor<1x64x1x16xf32>, tensor<1x64x1x16xf32>, tensor<1x3x1x16xf32>, tensor<1x3x1x16xf32>, tensor<1x64x4x3xf32>) -> tensor<1x64x4x16xf32>
  return
}

// -----

func.func @indexer_dynamic_top_k(%q: tensor<1x64x4x16xf32>, %k: tensor<1x64x16xf32>, %w: tensor<1x64x4xf32>) {
  // expected-error @+1 {{indices result must be 'tensor<1x64x32xi32>' ([B, Sq, top_k] i32), got 'tensor<1x64x?xi32>'}}
  %i = attn.lightning_indexer %q, %k, %w top_k = 32 : (tensor<1x64x4x16xf32>, tensor<1x64x16xf32>, tensor<1x64x4xf32>) -> tensor<1x64x?xi32>
  return
}

// -----

func.func @sparse_huge_block(%q: tensor<1x4x4x16xf32>, %k: tensor<1x64x1x16xf32>, %i: tensor<1x4x1x2xi32>) {
  // expected-error @+1 {{block_size must be in [1, 2^31 - 1], got 4294967296}}
  %o = attn.sparse_attention %q, %k, %k, %i block_size = 4294967296 : (tensor<1x4x4x16xf32>, tensor<1x64x1x16xf32>, tensor<1x64x1x16xf32>, tensor<1x4x1x2xi32>) -> tensor<1x4x4x16xf32>
  return
}
