// A public function that returns a memref: not a program entry point
// (entry points take and return tensors).
func.func @buffers(%x: memref<4xf32>) -> memref<4xf32> {
  return %x : memref<4xf32>
}
