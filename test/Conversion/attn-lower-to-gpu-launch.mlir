// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto" | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_80 kernel=auto" | FileCheck %s --check-prefix=MMA

// Each attn op becomes the host code of its kernels' launch contract
// (docs/kernel-spec.md): buffers of its operands, the sizes read off their
// dims (a size two operands share checked at run time where it is dynamic),
// the result allocated from the sizes, the grid evaluated from them, TMA
// descriptors (marked casts until attn-gpu-device-memory), one launch.

// CHECK-LABEL: func.func @dynamic
// CHECK-SAME: (%[[Q:.*]]: tensor<?x32x?x128xbf16>, %[[K:.*]]: tensor<?x8x?x128xbf16>, %[[V:.*]]: tensor<?x8x?x128xbf16>)
// CHECK: %[[QB:.*]] = bufferization.to_buffer %[[Q]] read_only : tensor<?x32x?x128xbf16> to memref<?x32x?x128xbf16>
// CHECK: %[[B:.*]] = memref.dim %[[QB]], %c0
// CHECK: %[[SQ:.*]] = memref.dim %[[QB]], %c2
// CHECK: %[[KB:.*]] = bufferization.to_buffer %[[K]] read_only
// CHECK: %[[KBATCH:.*]] = memref.dim %[[KB]], %c0
// CHECK: %[[SAME:.*]] = arith.cmpi eq, %[[KBATCH]], %[[B]] : index
// CHECK: cf.assert %[[SAME]], "attn.attention at {{.*}}: dim 0 of 'k' differs from B"
// CHECK: %[[SK:.*]] = memref.dim %[[KB]], %c2
// CHECK: %[[VB:.*]] = bufferization.to_buffer %[[V]] read_only
// CHECK: cf.assert {{.*}} "attn.attention at {{.*}}: dim 0 of 'v' differs from B"
// CHECK: cf.assert {{.*}} "attn.attention at {{.*}}: dim 2 of 'v' differs from Sk"
// CHECK: %[[O:.*]] = memref.alloc(%[[B]], %[[SQ]]) : memref<?x32x?x128xbf16>
// CHECK: %[[QF:.*]] = memref.collapse_shape %[[QB]] {{\[}}[0, 1, 2, 3]] : memref<?x32x?x128xbf16> into memref<?xbf16>
// The kernel takes the scale as an argument (KernelSpec.h: runtimeValues):
// the op's, 1/sqrt(128) by default.
// CHECK: %[[SCALE:.*]] = arith.constant 0.0883883461 : f32
// CHECK: %[[QT:.*]] = builtin.unrealized_conversion_cast %[[QB]] : memref<?x32x?x128xbf16> to !llvm.ptr {attn.tensor_map = !nvgpu.tensormap.descriptor<tensor = memref<1x1x128x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b, l2promo = l2promo_256b, oob = zero, interleave = none>}
// CHECK: %[[TILES:.*]] = arith.ceildivui %[[SQ]], %c128
// CHECK: gpu.launch_func @[[KERNEL:attn_bf16_d128_dv128_bhsd_causal_wgmma]]::@[[KERNEL]] blocks in (%[[TILES]], %c32{{.*}}, %[[B]]) threads in (%c384, %c1{{.*}}, %c1{{.*}}) dynamic_shared_memory_size %c163840_i32 args(%[[QF]] : memref<?xbf16>, {{.*}} : memref<?xbf16>, {{.*}} : memref<?xbf16>, {{.*}} : memref<?xbf16>, %[[B]] : index, %c32{{.*}} : index, %c8{{.*}} : index, %[[SQ]] : index, %[[SK]] : index, %[[SCALE]] : f32, %[[QT]] : !llvm.ptr, {{.*}} : !llvm.ptr, {{.*}} : !llvm.ptr)
// CHECK: %[[R:.*]] = bufferization.to_tensor %[[O]] restrict writable : memref<?x32x?x128xbf16> to tensor<?x32x?x128xbf16>
// CHECK: return %[[R]]
// CHECK-NOT: attn.attention

// On sm_80 the mma.sync kernel takes no tensor maps.
// MMA-LABEL: func.func @dynamic
// MMA-NOT: attn.tensor_map
// MMA: gpu.launch_func @[[KERNEL:attn_bf16_d128_dv128_bhsd_causal_[a-z0-9_]+]]::@[[KERNEL]] blocks in
// MMA-NOT: !llvm.ptr
// MMA: return
func.func @dynamic(%q: tensor<?x32x?x128xbf16>, %k: tensor<?x8x?x128xbf16>, %v: tensor<?x8x?x128xbf16>) -> tensor<?x32x?x128xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal> scale = 0.0883883461 : (tensor<?x32x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>) -> tensor<?x32x?x128xbf16>
  return %o : tensor<?x32x?x128xbf16>
}

// -----

// Static shapes need no run-time check; a bias, sinks and the LSE are
// operands and results of the same launch.
// CHECK-LABEL: func.func @static_bias_sinks_lse
// CHECK-NOT: cf.assert
// CHECK-DAG: %[[O:.*]] = memref.alloc() : memref<2x4x100x64xf16>
// CHECK-DAG: %[[L:.*]] = memref.alloc() : memref<2x4x100xf32>
// CHECK: gpu.launch_func
// CHECK-DAG: bufferization.to_tensor %[[O]] restrict writable
// CHECK-DAG: bufferization.to_tensor %[[L]] restrict writable
func.func @static_bias_sinks_lse(%q: tensor<2x4x100x64xf16>, %k: tensor<2x2x100x64xf16>, %v: tensor<2x2x100x64xf16>, %bias: tensor<2x1x100x100xf16>, %s: tensor<4xf32>) -> (tensor<2x4x100x64xf16>, tensor<2x4x100xf32>) {
  %o, %lse = attn.attention %q, %k, %v bias(%bias) sinks(%s) scale = 0.125 : (tensor<2x4x100x64xf16>, tensor<2x2x100x64xf16>, tensor<2x2x100x64xf16>, tensor<2x1x100x100xf16>, tensor<4xf32>) -> (tensor<2x4x100x64xf16>, tensor<2x4x100xf32>)
  return %o, %lse : tensor<2x4x100x64xf16>, tensor<2x4x100xf32>
}

// -----

// Paged decode: the split kernel, then the combine kernel, over f32
// workspaces of `Splits` partial results. The split count is the host's
// choice, made at run time from the device's SM count (the runtime's
// attnRuntimeMultiprocessorCount) as attn.gpu.num_splits makes it.
// CHECK-LABEL: func.func private @attnRuntimeMultiprocessorCount() -> i64
// CHECK-LABEL: func.func @paged
// CHECK: cf.assert {{.*}} "attn.paged_attention at {{.*}}: dim 0 of 'block_table' differs from B"
// CHECK: %[[SMS:.*]] = call @attnRuntimeMultiprocessorCount() : () -> i64
// CHECK: %[[SPLITS:.*]] = arith.maxsi
// CHECK: cf.assert {{.*}} "attn.paged_attention: more than 65535 sequences in one call
// CHECK: %[[OPART:.*]] = memref.alloc(%[[SPLITS]], {{.*}}) : memref<?x?x?x?x?xf32>
// CHECK: %[[LPART:.*]] = memref.alloc(%[[SPLITS]], {{.*}}) : memref<?x?x?x?xf32>
// CHECK: %[[PSCALE:.*]] = arith.constant 0.0883883461 : f32
// CHECK: gpu.launch_func @attn_paged_bf16_d128_dv128_nhd_p16_causal::{{.*}}, %[[PSCALE]] : f32)
// CHECK: gpu.launch_func @attn_paged_combine_bf16_dv128::
// CHECK: return
func.func @paged(%q: tensor<?x1x32x128xbf16>, %kc: tensor<?x16x8x128xbf16>, %vc: tensor<?x16x8x128xbf16>, %t: tensor<?x?xi32>, %l: tensor<?xi32>) -> tensor<?x1x32x128xbf16> {
  %o = attn.paged_attention %q, %kc, %vc, %t, %l mask = <causal> scale = 0.0883883461 : (tensor<?x1x32x128xbf16>, tensor<?x16x8x128xbf16>, tensor<?x16x8x128xbf16>, tensor<?x?xi32>, tensor<?xi32>) -> tensor<?x1x32x128xbf16>
  return %o : tensor<?x1x32x128xbf16>
}

// -----

// Gated delta: the chunk and state kernels over six f32 workspaces, one of
// them sized by the chunk count ceil(T / 32) computed from the runtime
// length; up to 16 tokens (decode) the recurrent kernel instead.
// CHECK-LABEL: func.func @gated
// CHECK: %[[T:.*]] = memref.dim %{{.*}}, %c1
// CHECK: %[[CHUNKS:.*]] = arith.ceildivui %[[T]], %c32
// CHECK-COUNT-5: memref.alloc({{.*}}) : memref<?x?x?x?xf32>
// CHECK: memref.alloc(%{{.*}}, %c8{{.*}}, %[[CHUNKS]], %c128{{.*}}) : memref<?x?x?x?xf32>
// CHECK: %[[DECODE:.*]] = arith.cmpi ule, %[[T]], %c16
// CHECK: scf.if %[[DECODE]] {
// CHECK: gpu.launch_func @attn_gdn_recurrent_
// CHECK: } else {
// CHECK: gpu.launch_func @attn_gdn_chunk_
// CHECK: gpu.launch_func @attn_gdn_state_
// CHECK: }
// CHECK: return
func.func @gated(%q: tensor<?x?x4x128xbf16>, %k: tensor<?x?x4x128xbf16>, %v: tensor<?x?x8x128xbf16>, %g: tensor<?x?x8xf32>, %beta: tensor<?x?x8xf32>) -> (tensor<?x?x8x128xbf16>, tensor<?x8x128x128xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %beta qk_l2norm scale = 0.0883883461 chunk_size = 32 : (tensor<?x?x4x128xbf16>, tensor<?x?x4x128xbf16>, tensor<?x?x8x128xbf16>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> (tensor<?x?x8x128xbf16>, tensor<?x8x128x128xf32>)
  return %o, %s : tensor<?x?x8x128xbf16>, tensor<?x8x128x128xf32>
}
