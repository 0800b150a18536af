// A kernel module whose name would put its bundle outside the -o directory.
gpu.module @"../escaped2" {
  gpu.func @k() kernel { gpu.return }
}
