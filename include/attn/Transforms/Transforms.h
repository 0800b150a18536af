//===- Transforms.h - attn rewrite entry points -----------------*- C++ -*-===//
//
// Pattern populators of attn's transformations, for pipelines, the plugin and
// compilers that embed attn.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TRANSFORMS_TRANSFORMS_H
#define ATTN_TRANSFORMS_TRANSFORMS_H

namespace mlir {
class RewritePatternSet;
namespace attn {

/// Adds the patterns that rewrite unfused attention graphs (linalg, tosa,
/// arith on tensors) into attn.attention. They anchor on the P·V contraction
/// and are meant for a single-walk driver (walkAndApplyPatterns): each
/// successful application erases the ops it absorbed that became dead.
void populateAttnFusePatterns(RewritePatternSet &patterns);

} // namespace attn
} // namespace mlir

#endif // ATTN_TRANSFORMS_TRANSFORMS_H
