// Stock mlir-opt 22 loads the attn dialect from the plugin and round-trips a
// GQA sliding-window attention.
// RUN: mlir-opt %s --load-dialect-plugin=%attn_plugin \
// RUN:   --pass-pipeline="builtin.module(func.func(cse))" | FileCheck %s
// RUN: mlir-opt %s --load-dialect-plugin=%attn_plugin --mlir-print-op-generic \
// RUN:   | mlir-opt --load-dialect-plugin=%attn_plugin | FileCheck %s
// Both entry points together are fine.
// RUN: mlir-opt %s --load-pass-plugin=%attn_plugin \
// RUN:   --load-dialect-plugin=%attn_plugin | FileCheck %s
// Without the plugin, stock mlir-opt does not know the dialect.
// RUN: not mlir-opt %s 2>&1 | FileCheck %s --check-prefix=NOPLUGIN
// NOPLUGIN: error: Dialect `attn' not found for custom op 'attn.attention'

// CHECK-LABEL: func.func @gqa_sliding_window
// CHECK-SAME: (%[[Q:.+]]: tensor<1x2048x32x128xbf16>, %[[K:.+]]: tensor<1x2048x8x128xbf16>, %[[V:.+]]: tensor<1x2048x8x128xbf16>)
// CHECK: %[[O:.+]], %[[L:.+]] = attn.attention %[[Q]], %[[K]], %[[V]] layout = bshd mask = <window, left = 1023, right = 0> :
// CHECK-SAME: -> (tensor<1x2048x32x128xbf16>, tensor<1x32x2048xf32>)
// CHECK: return %[[O]], %[[L]]
func.func @gqa_sliding_window(%q: tensor<1x2048x32x128xbf16>, %k: tensor<1x2048x8x128xbf16>,
                              %v: tensor<1x2048x8x128xbf16>)
    -> (tensor<1x2048x32x128xbf16>, tensor<1x32x2048xf32>) {
  %o, %lse = attn.attention %q, %k, %v layout = bshd mask = <window, left = 1023, right = 0>
      : (tensor<1x2048x32x128xbf16>, tensor<1x2048x8x128xbf16>, tensor<1x2048x8x128xbf16>)
      -> (tensor<1x2048x32x128xbf16>, tensor<1x32x2048xf32>)
  return %o, %lse : tensor<1x2048x32x128xbf16>, tensor<1x32x2048xf32>
}
