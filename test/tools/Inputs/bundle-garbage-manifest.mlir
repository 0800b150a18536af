// An input that brings its own attn.kernels entry: not a manifest.
module attributes {attn.kernels = {mine = "garbage"}} {
  gpu.module @mine {
    gpu.func @mine() kernel { gpu.return }
  }
}
