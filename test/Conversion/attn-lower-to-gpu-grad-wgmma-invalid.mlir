// RUN: attn-opt %s --split-input-file --verify-diagnostics --attn-lower-to-gpu="chip=sm_90a kernel=wgmma drop-host"
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_80 kernel=wgmma drop-host" 2>&1 | FileCheck %s --check-prefix=SM80

// kernel=wgmma is an explicit request: where the sm_90a dK/dV kernel cannot
// run the backward, the op gets an error (no silent fallback), and so does
// any chip other than sm_90a.

// SM80: attn-lower-to-gpu-grad-wgmma-invalid.mlir:[[@LINE+3]]:{{[0-9]+}}: error: 'attn.attention_grad' op the wgmma backward needs chip sm_90a, not sm_80
func.func @bf16_d128(%q: tensor<1x2x32x128xbf16>, %lse: tensor<1x2x32xf32>)
    -> (tensor<1x2x32x128xbf16>, tensor<1x2x32x128xbf16>, tensor<1x2x32x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse mask = <causal>
      : (tensor<1x2x32x128xbf16>, tensor<1x2x32x128xbf16>, tensor<1x2x32x128xbf16>,
         tensor<1x2x32x128xbf16>, tensor<1x2x32x128xbf16>, tensor<1x2x32xf32>)
      -> (tensor<1x2x32x128xbf16>, tensor<1x2x32x128xbf16>, tensor<1x2x32x128xbf16>)
  return %dq, %dk, %dv : tensor<1x2x32x128xbf16>, tensor<1x2x32x128xbf16>, tensor<1x2x32x128xbf16>
}

// -----

func.func @f32(%q: tensor<1x2x32x64xf32>, %lse: tensor<1x2x32xf32>)
    -> (tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>) {
  // expected-error @+1 {{the wgmma backward needs f16 or bf16}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse
      : (tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>,
         tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32xf32>)
      -> (tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>)
  return %dq, %dk, %dv : tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>, tensor<1x2x32x64xf32>
}

// -----

// Head dims that are not whole 64-column panels (96) or past 256.
func.func @f16_d96(%q: tensor<1x2x32x96xf16>, %lse: tensor<1x2x32xf32>)
    -> (tensor<1x2x32x96xf16>, tensor<1x2x32x96xf16>, tensor<1x2x32x96xf16>) {
  // expected-error @+1 {{the wgmma backward needs head dims that are multiples of 64 up to 256}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse
      : (tensor<1x2x32x96xf16>, tensor<1x2x32x96xf16>, tensor<1x2x32x96xf16>,
         tensor<1x2x32x96xf16>, tensor<1x2x32x96xf16>, tensor<1x2x32xf32>)
      -> (tensor<1x2x32x96xf16>, tensor<1x2x32x96xf16>, tensor<1x2x32x96xf16>)
  return %dq, %dk, %dv : tensor<1x2x32x96xf16>, tensor<1x2x32x96xf16>, tensor<1x2x32x96xf16>
}

// -----

func.func @bf16_d320(%q: tensor<1x2x32x320xbf16>, %lse: tensor<1x2x32xf32>)
    -> (tensor<1x2x32x320xbf16>, tensor<1x2x32x320xbf16>, tensor<1x2x32x320xbf16>) {
  // expected-error @+1 {{the wgmma backward needs head dims that are multiples of 64 up to 256}}
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse mask = <causal>
      : (tensor<1x2x32x320xbf16>, tensor<1x2x32x320xbf16>, tensor<1x2x32x320xbf16>,
         tensor<1x2x32x320xbf16>, tensor<1x2x32x320xbf16>, tensor<1x2x32xf32>)
      -> (tensor<1x2x32x320xbf16>, tensor<1x2x32x320xbf16>, tensor<1x2x32x320xbf16>)
  return %dq, %dk, %dv : tensor<1x2x32x320xbf16>, tensor<1x2x32x320xbf16>, tensor<1x2x32x320xbf16>
}
