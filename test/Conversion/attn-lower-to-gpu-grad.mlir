// RUN: attn-opt %s --attn-lower-to-gpu="chip=sm_90a" --canonicalize > %t
// RUN: FileCheck %s < %t
// RUN: FileCheck %s --check-prefix=M0 < %t
// RUN: FileCheck %s --check-prefix=M1 < %t
// RUN: FileCheck %s --check-prefix=M2 < %t
// RUN: FileCheck %s --check-prefix=VARIANT < %t
// RUN: attn-opt %s --attn-to-ptx="chip=sm_90a" | FileCheck %s --check-prefix=PTX

// attn.attention_grad's kernels, from its AttentionGradSpec: dQ (which
// writes Delta), then dK/dV, then the sink gradient, in the manifests'
// "step" order; grids over query rows, keys and heads.
// M0: entry = "attn_bf16_d64_dv32_bhsd_window_cap_sinksf32_bwd_dq"{{.*}}grid = [{ceil_div = ["Sq", 128]}, "Hq", "B"]{{.*}}kernel = "attention_grad.dq"{{.*}}step = 0
// M1: entry = "attn_bf16_d64_dv32_bhsd_window_cap_sinksf32_bwd_dkdv"{{.*}}grid = [{ceil_div = ["Sk", 128]}, "Hkv", "B"]{{.*}}kernel = "attention_grad.dkdv"{{.*}}step = 1
// M2: entry = "attn_bf16_d64_dv32_bhsd_window_cap_sinksf32_bwd_dsinks"{{.*}}kernel = "attention_grad.dsinks"{{.*}}step = 2
// The variant is the spec: op attention_grad, values left to run time.
// VARIANT: op = "attention_grad"{{.*}}scale = "runtime"{{.*}}softcap = "runtime"{{.*}}window_left = "runtime"

// dQ: one thread per query row, the admitted keys of its band; P from the
// LSE (0 for lse = -inf), dS with softcap's 1 - tanh².
// CHECK-LABEL: gpu.func @attn_bf16_d64_dv32_bhsd_window_cap_sinksf32_bwd_dq
// CHECK: arith.cmpf oeq, %{{.+}}, %cst
// CHECK: math.tanh
// CHECK: math.exp2
// CHECK: arith.subf %{{.+}}, %{{.+}} : f32
// CHECK: gpu.return

// dK/dV: one thread per key; the query heads of its KV head's group, and the
// rows whose window admits the key: [j - right, j + 1 + left), shifted by
// Sk - Sq and clamped.
// CHECK-LABEL: gpu.func @attn_bf16_d64_dv32_bhsd_window_cap_sinksf32_bwd_dkdv
// CHECK: %[[GROUP:.+]] = arith.divui %{{.+}}, %{{.+}} : index
// CHECK: %[[H0:.+]] = arith.muli %block_id_y, %[[GROUP]] : index
// CHECK: %[[H1:.+]] = arith.addi %[[H0]], %[[GROUP]] : index
// CHECK: scf.for %{{.+}} = %[[H0]] to %[[H1]]
// CHECK:   scf.for
// CHECK: gpu.return

// The sink gradient: one thread per head over batch and rows.
// CHECK-LABEL: gpu.func @attn_bf16_d64_dv32_bhsd_window_cap_sinksf32_bwd_dsinks
// CHECK: math.exp
// CHECK: gpu.return

// attn-to-ptx: three kernels, each compiled to a gpu.binary.
// PTX-COUNT-3: gpu.binary @attn_bf16_d64_dv32_bhsd_window_cap_sinksf32_bwd_
func.func @grad(%q: tensor<1x4x64x64xbf16>, %k: tensor<1x2x64x64xbf16>, %v: tensor<1x2x64x32xbf16>,
                %o: tensor<1x4x64x32xbf16>, %lse: tensor<1x4x64xf32>, %sinks: tensor<4xf32>)
    -> (tensor<1x4x64x64xbf16>, tensor<1x2x64x64xbf16>, tensor<1x2x64x32xbf16>, tensor<4xf32>) {
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %k, %v, %o, %o, %lse sinks(%sinks)
      mask = <window, left = 8, right = 2> softcap = 20.0
      : (tensor<1x4x64x64xbf16>, tensor<1x2x64x64xbf16>, tensor<1x2x64x32xbf16>,
         tensor<1x4x64x32xbf16>, tensor<1x4x64x32xbf16>, tensor<1x4x64xf32>, tensor<4xf32>)
      -> (tensor<1x4x64x64xbf16>, tensor<1x2x64x64xbf16>, tensor<1x2x64x32xbf16>, tensor<4xf32>)
  return %dq, %dk, %dv, %ds : tensor<1x4x64x64xbf16>, tensor<1x2x64x64xbf16>, tensor<1x2x64x32xbf16>, tensor<4xf32>
}
