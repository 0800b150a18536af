// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto" | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto length-alternatives=0" | FileCheck %s --check-prefix=OFF

// A variant with length alternatives (docs/design-length-choice.md; here
// D = Dv = 128 non-causal, whose 176-key kernel is preferred from 8192 keys
// up) launches one kernel per call, chosen on its sizes at run time. Static
// sizes decide it as the host code is built: one launch, no branch.

// CHECK: attn.kernels = {
// CHECK-SAME: attn_bf16_d128_dv128_bhsd_none_wgmma_kv176_pSk8192 = {
// CHECK-SAME: prefer = {Sk = [8192, unit]}
// CHECK-LABEL: func.func @dynamic
// CHECK: %[[KB:.*]] = bufferization.to_buffer %arg1
// CHECK: %[[SK:.*]] = memref.dim %[[KB]], %c2
// CHECK: %[[LONG:.*]] = arith.cmpi sge, %[[SK]], %c8192 : index
// CHECK: scf.if %[[LONG]] {
// CHECK: gpu.launch_func @attn_bf16_d128_dv128_bhsd_none_wgmma_kv176_pSk8192::@attn_bf16_d128_dv128_bhsd_none_wgmma_kv176_pSk8192
// CHECK: } else {
// CHECK: gpu.launch_func @attn_bf16_d128_dv128_bhsd_none_wgmma::@attn_bf16_d128_dv128_bhsd_none_wgmma
// CHECK: }
// CHECK: return
// CHECK-LABEL: func.func @long
// CHECK-NOT: scf.if
// CHECK: gpu.launch_func @attn_bf16_d128_dv128_bhsd_none_wgmma_kv176_pSk8192::
// CHECK-NOT: gpu.launch_func
// CHECK-LABEL: func.func @short
// CHECK-NOT: scf.if
// CHECK: gpu.launch_func @attn_bf16_d128_dv128_bhsd_none_wgmma::
// CHECK-NOT: gpu.launch_func
// CHECK: return
// CHECK-DAG: gpu.module @attn_bf16_d128_dv128_bhsd_none_wgmma
// CHECK-DAG: gpu.module @attn_bf16_d128_dv128_bhsd_none_wgmma_kv176_pSk8192

// OFF-NOT: kv176
// OFF-LABEL: func.func @dynamic
// OFF-NOT: scf.if
// OFF: gpu.launch_func @attn_bf16_d128_dv128_bhsd_none_wgmma::
// OFF-NOT: kv176
func.func @dynamic(%q: tensor<?x8x?x128xbf16>, %k: tensor<?x8x?x128xbf16>, %v: tensor<?x8x?x128xbf16>) -> tensor<?x8x?x128xbf16> {
  %o = attn.attention %q, %k, %v scale = 0.0883883461 : (tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>) -> tensor<?x8x?x128xbf16>
  return %o : tensor<?x8x?x128xbf16>
}
func.func @long(%q: tensor<1x8x16384x128xbf16>, %k: tensor<1x8x16384x128xbf16>, %v: tensor<1x8x16384x128xbf16>) -> tensor<1x8x16384x128xbf16> {
  %o = attn.attention %q, %k, %v scale = 0.0883883461 : (tensor<1x8x16384x128xbf16>, tensor<1x8x16384x128xbf16>, tensor<1x8x16384x128xbf16>) -> tensor<1x8x16384x128xbf16>
  return %o : tensor<1x8x16384x128xbf16>
}
func.func @short(%q: tensor<1x8x1024x128xbf16>, %k: tensor<1x8x1024x128xbf16>, %v: tensor<1x8x1024x128xbf16>) -> tensor<1x8x1024x128xbf16> {
  %o = attn.attention %q, %k, %v scale = 0.0883883461 : (tensor<1x8x1024x128xbf16>, tensor<1x8x1024x128xbf16>, tensor<1x8x1024x128xbf16>) -> tensor<1x8x1024x128xbf16>
  return %o : tensor<1x8x1024x128xbf16>
}

// -----

// Where no launch takes the alternative (static sizes under 8192 keys), its
// kernel and manifest are dropped: the program compiles one kernel.
// CHECK: // -----
// CHECK-NOT: kv176
// CHECK-LABEL: func.func @short_only
// CHECK: gpu.launch_func @attn_bf16_d128_dv128_bhsd_none_wgmma::
// CHECK-NOT: kv176
// CHECK: gpu.module @attn_bf16_d128_dv128_bhsd_none_wgmma
// CHECK-NOT: kv176
func.func @short_only(%q: tensor<1x8x1024x128xbf16>, %k: tensor<1x8x1024x128xbf16>, %v: tensor<1x8x1024x128xbf16>) -> tensor<1x8x1024x128xbf16> {
  %o = attn.attention %q, %k, %v scale = 0.0883883461 : (tensor<1x8x1024x128xbf16>, tensor<1x8x1024x128xbf16>, tensor<1x8x1024x128xbf16>) -> tensor<1x8x1024x128xbf16>
  return %o : tensor<1x8x1024x128xbf16>
}

// -----

// A causal variant at D = Dv = 128 prefers one warpgroup of 64 rows and 64
// keys a step through 2048 keys. Sizes are never negative, so a range from 0
// compares only its upper bound.
// CHECK-LABEL: func.func @causal
// CHECK: %[[KB:.*]] = bufferization.to_buffer %arg1
// CHECK: %[[SK:.*]] = memref.dim %[[KB]], %c2
// CHECK-NOT: arith.cmpi sge, %[[SK]]
// CHECK: %[[SHORT:.*]] = arith.cmpi slt, %[[SK]], %c2049 : index
// CHECK-NEXT: scf.if %[[SHORT]] {
// CHECK: gpu.launch_func @attn_bf16_d128_dv128_bhsd_causal_wgmma_q64_kv64_pSk0to2049::
// CHECK-SAME: threads in (%c256, %c1, %c1
// CHECK: } else {
// CHECK: gpu.launch_func @attn_bf16_d128_dv128_bhsd_causal_wgmma::
// CHECK-SAME: threads in (%c384, %c1, %c1
// OFF-LABEL: func.func @causal
// OFF-NOT: scf.if
// OFF: gpu.launch_func @attn_bf16_d128_dv128_bhsd_causal_wgmma::
// OFF-NOT: q64_kv64
func.func @causal(%q: tensor<?x8x?x128xbf16>, %k: tensor<?x8x?x128xbf16>, %v: tensor<?x8x?x128xbf16>) -> tensor<?x8x?x128xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal> scale = 0.0883883461 : (tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>) -> tensor<?x8x?x128xbf16>
  return %o : tensor<?x8x?x128xbf16>
}

// -----

// Causal D = Dv = 64: 64 keys a step (three blocks an SM) below 1792 keys.
// CHECK-LABEL: func.func @causal_d64
// CHECK: %[[SHORT:.*]] = arith.cmpi slt, %{{.*}}, %c1792 : index
// CHECK-NEXT: scf.if %[[SHORT]] {
// CHECK: gpu.launch_func @attn_bf16_d64_dv64_bhsd_causal_wgmma_q64_kv64_pSk0to1792::
// CHECK-SAME: threads in (%c256, %c1, %c1
// CHECK: } else {
// CHECK: gpu.launch_func @attn_bf16_d64_dv64_bhsd_causal_wgmma::
// CHECK-SAME: threads in (%c256, %c1, %c1
// OFF-LABEL: func.func @causal_d64
// OFF-NOT: scf.if
// OFF: gpu.launch_func @attn_bf16_d64_dv64_bhsd_causal_wgmma::
// OFF-NOT: q64_kv64
func.func @causal_d64(%q: tensor<?x8x?x64xbf16>, %k: tensor<?x8x?x64xbf16>, %v: tensor<?x8x?x64xbf16>) -> tensor<?x8x?x64xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal> scale = 0.125 : (tensor<?x8x?x64xbf16>, tensor<?x8x?x64xbf16>, tensor<?x8x?x64xbf16>) -> tensor<?x8x?x64xbf16>
  return %o : tensor<?x8x?x64xbf16>
}
