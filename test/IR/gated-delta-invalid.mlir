// RUN: attn-opt %s --split-input-file --verify-diagnostics

// Every inconsistent shape or type of attn.gated_delta_rule gets a located
// diagnostic.

func.func @f(%q: tensor<2x10x4x64xi32>, %k: tensor<2x10x4x64xi32>, %v: tensor<2x10x8x32xi32>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xi32>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op query element type must be f16, bf16 or f32, got 'i32'}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xi32>, tensor<2x10x4x64xi32>, tensor<2x10x8x32xi32>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xi32>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xi32>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op key must be a rank-4 tensor [B, T, Hk, Dk], got rank 3}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8x64xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op gate must be a rank-3 tensor [B, T, Hv] (gate_kind = head), got rank 4}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8x64xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op gate must be a rank-4 tensor [B, T, Hv, Dk] (gate_kind = channel), got rank 3}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b gate_kind = channel : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op value element type 'f16' must be the query element type 'bf16'}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf16>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op beta element type 'f16' must be f32 or the query element type 'bf16'}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf16>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x32xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op key head dim (32) must equal query head dim (64)}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x32xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x11x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op value sequence length (11) must equal query sequence length (10)}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x11x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x6x32xbf16>, %g: tensor<2x10x6xf32>, %b: tensor<2x10x6xf32>) -> (tensor<2x10x6x32xbf16>, tensor<2x6x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op value head count (6) must be a multiple of the key head count (4)}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x6x32xbf16>, tensor<2x10x6xf32>, tensor<2x10x6xf32>) -> (tensor<2x10x6x32xbf16>, tensor<2x6x64x32xf32>)
  return %o, %s : tensor<2x10x6x32xbf16>, tensor<2x6x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x4xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op gate dim 2 (4) must equal value head count (8)}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x4xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8x32xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op gate dim 3 (32) must equal key head dim (64)}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b gate_kind = channel : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8x32xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x9x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op beta dim 1 (9) must equal query sequence length (10)}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x9x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x64xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op output dim 3 (64) must equal value head dim (32)}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x64xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x64xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x32x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op final_state dim 2 (32) must equal key head dim (64)}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x32x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x32x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xbf16>) {
  // expected-error @below {{'attn.gated_delta_rule' op final_state element type must be f32, got 'bf16'}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xbf16>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xbf16>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>, %s0: tensor<2x4x64x32xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op initial_state dim 1 (4) must equal value head count (8)}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b initial_state(%s0) : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>, tensor<2x4x64x32xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>, %s0: tensor<2x8x64x32xbf16>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op initial_state element type must be f32, got 'bf16'}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b initial_state(%s0) : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>, tensor<2x8x64x32xbf16>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op chunk_size must be a power of two in [16, 256], got 48}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b chunk_size = 48 : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x64xbf16>, %k: tensor<2x10x4x64xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op scale must be positive and finite}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b scale = -1.0 : (tensor<2x10x4x64xbf16>, tensor<2x10x4x64xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x64x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x?xbf16>, %k: tensor<2x10x4x?xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x?x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op needs an explicit scale when the key head dim is dynamic}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x?xbf16>, tensor<2x10x4x?xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x?x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x?x32xf32>
}

// -----

func.func @f(%q: tensor<2x10x4x0xbf16>, %k: tensor<2x10x4x0xbf16>, %v: tensor<2x10x8x32xbf16>, %g: tensor<2x10x8xf32>, %b: tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x0x32xf32>) {
  // expected-error @below {{'attn.gated_delta_rule' op needs an explicit scale when the key head dim is dynamic or 0}}
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<2x10x4x0xbf16>, tensor<2x10x4x0xbf16>, tensor<2x10x8x32xbf16>, tensor<2x10x8xf32>, tensor<2x10x8xf32>) -> (tensor<2x10x8x32xbf16>, tensor<2x8x0x32xf32>)
  return %o, %s : tensor<2x10x8x32xbf16>, tensor<2x8x0x32xf32>
}
