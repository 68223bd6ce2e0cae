// A .wasm file imported by a Worker is a compiled module (wrangler's CompiledWasm rule): Workers
// do not compile WebAssembly from bytes at run time.
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
