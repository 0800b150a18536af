// RUN: attn-opt %s -split-input-file -verify-diagnostics
// One case per diagnostic of FP8 (f8E4M3FN) attn.attention.

func.func @descale_without_fp8(%q: tensor<1x4x8x32xbf16>, %d: tensor<f32>) {
  // expected-error @+1 {{descale takes f8E4M3FN query, key and value, got 'bf16'}}
  %o = attn.attention %q, %q, %q descale(%d, %d, %d) : (tensor<1x4x8x32xbf16>, tensor<1x4x8x32xbf16>, tensor<1x4x8x32xbf16>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @fp8_without_descale(%q: tensor<1x4x8x32xf8E4M3FN>) {
  // expected-error @+1 {{f8E4M3FN query, key and value need descale(%q, %k, %v) operands (f32 factors, per tensor [] or per batch and KV head [B, Hkv]; pass constant ones for none)}}
  %o = attn.attention %q, %q, %q : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @two_descales(%q: tensor<1x4x8x32xf8E4M3FN>, %d: tensor<f32>) {
  // expected-error @+1 {{descale takes three operands (query, key, value), got 2}}
  %o = attn.attention %q, %q, %q descale(%d, %d) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<f32>, tensor<f32>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @fp8_key_not_fp8(%q: tensor<1x4x8x32xf8E4M3FN>, %k: tensor<1x4x8x32xbf16>, %d: tensor<f32>) {
  // expected-error @+1 {{key element type 'bf16' does not match query element type 'f8E4M3FN'}}
  %o = attn.attention %q, %k, %k descale(%d, %d, %d) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xbf16>, tensor<1x4x8x32xbf16>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @mixed_fp8_types(%q: tensor<1x4x8x32xf8E4M3FN>, %v: tensor<1x4x8x32xf8E5M2>, %d: tensor<f32>) {
  // expected-error @+1 {{value element type 'f8E5M2' does not match query element type 'f8E4M3FN'}}
  %o = attn.attention %q, %q, %v descale(%d, %d, %d) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E5M2>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @other_fp8_type(%q: tensor<1x4x8x32xf8E5M2>) {
  // expected-error @+1 {{query element type must be f16, bf16, f32 or f8E4M3FN, got 'f8E5M2'}}
  %o = attn.attention %q, %q, %q : (tensor<1x4x8x32xf8E5M2>, tensor<1x4x8x32xf8E5M2>, tensor<1x4x8x32xf8E5M2>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @fp8_output(%q: tensor<1x4x8x32xf8E4M3FN>, %d: tensor<f32>) {
  // expected-error @+1 {{output element type of f8E4M3FN attention must be bf16, f16 or f32, got 'f8E4M3FN'}}
  %o = attn.attention %q, %q, %q descale(%d, %d, %d) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x8x32xf8E4M3FN>
  return
}

// -----

func.func @output_shape(%q: tensor<1x4x8x32xf8E4M3FN>, %d: tensor<f32>) {
  // expected-error @+1 {{output shape 'tensor<1x4x8x16xbf16>' is incompatible with the expected 'tensor<1x4x8x32xbf16>' (query shape with the value head dim)}}
  %o = attn.attention %q, %q, %q descale(%d, %d, %d) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x8x16xbf16>
  return
}

// -----

func.func @bf16_bias(%q: tensor<1x4x8x32xf8E4M3FN>, %b: tensor<1x1x8x8xbf16>, %d: tensor<f32>) {
  // expected-error @+1 {{bias element type 'bf16' must be f32 with f8E4M3FN inputs}}
  %o = attn.attention %q, %q, %q bias(%b) descale(%d, %d, %d) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x1x8x8xbf16>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @fp8_sinks(%q: tensor<1x4x8x32xf8E4M3FN>, %s: tensor<4xf8E4M3FN>, %d: tensor<f32>) {
  // expected-error @+1 {{sinks element type 'f8E4M3FN' must be f32 with f8E4M3FN inputs}}
  %o = attn.attention %q, %q, %q sinks(%s) descale(%d, %d, %d) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<4xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

// Per query head is not a descale shape: FlashAttention-3's are [B, Hkv].
func.func @descale_per_query_head(%q: tensor<2x8x8x32xf8E4M3FN>, %k: tensor<2x4x8x32xf8E4M3FN>, %d: tensor<2x4xf32>, %dq: tensor<2x8xf32>) {
  // expected-error @+1 {{descale of query must be 'tensor<f32>' (per tensor) or 'tensor<2x4xf32>' (per batch and KV head, [B, Hkv]), got 'tensor<2x8xf32>'}}
  %o = attn.attention %q, %k, %k descale(%dq, %d, %d) : (tensor<2x8x8x32xf8E4M3FN>, tensor<2x4x8x32xf8E4M3FN>, tensor<2x4x8x32xf8E4M3FN>, tensor<2x8xf32>, tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x8x8x32xbf16>
  return
}

// -----

func.func @descale_rank1(%q: tensor<1x4x8x32xf8E4M3FN>, %d: tensor<f32>, %dv: tensor<1xf32>) {
  // expected-error @+1 {{descale of value must be 'tensor<f32>' (per tensor) or 'tensor<1x4xf32>' (per batch and KV head, [B, Hkv]), got 'tensor<1xf32>'}}
  %o = attn.attention %q, %q, %q descale(%d, %d, %dv) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<f32>, tensor<f32>, tensor<1xf32>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @descale_f16(%q: tensor<1x4x8x32xf8E4M3FN>, %d: tensor<f32>, %dk: tensor<f16>) {
  // expected-error @+1 {{descale of key must be 'tensor<f32>' (per tensor) or 'tensor<1x4xf32>' (per batch and KV head, [B, Hkv]), got 'tensor<f16>'}}
  %o = attn.attention %q, %q, %q descale(%d, %dk, %d) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<f32>, tensor<f16>, tensor<f32>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

func.func @mixed_descale_modes(%q: tensor<1x4x8x32xf8E4M3FN>, %d: tensor<f32>, %h: tensor<1x4xf32>) {
  // expected-error @+1 {{descales of query, key and value must have one type (all per tensor or all per KV head), got 'tensor<f32>' and 'tensor<1x4xf32>'}}
  %o = attn.attention %q, %q, %q descale(%d, %h, %h) : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<f32>, tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4x8x32xbf16>
  return
}

// -----

// No FP8 backward: attn.attention_grad takes f16, bf16 or f32 only.
func.func @fp8_grad(%q: tensor<1x4x8x32xf8E4M3FN>, %o: tensor<1x4x8x32xf8E4M3FN>, %lse: tensor<1x4x8xf32>) {
  // expected-error @+1 {{query element type must be f16, bf16 or f32, got 'f8E4M3FN'}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o, %lse : (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8xf32>) -> (tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>, tensor<1x4x8x32xf8E4M3FN>)
  return
}
