// libdiffscope_inject.so: the collector as an NVTX injection library. A process started with
// NVTX_INJECTION64_PATH=/path/to/libdiffscope_inject.so routes the ranges of every NVTX copy
// in it (every shared object: Python extensions, PyTorch's torch.cuda.nvtx, our macros in any
// library) to this one collector, which starts from the DIFFSCOPE_* environment at the first
// range and writes its outputs at exit. Unlike the static injection (collector.hpp in an
// executable), this reaches all shared objects: docs/collector.md.
#define DIFFSCOPE_COLLECTOR_NO_STATIC_INJECTION
#include <diffscope/collector.hpp>

// The entry point NVTX looks up with dlsym in the library named by NVTX_INJECTION64_PATH,
// once per NVTX copy. The only symbol this library exports.
extern "C" __attribute__((visibility("default"))) int InitializeInjectionNvtx2(
    NvtxGetExportTableFunc_t get_export_table) {
  diffscope::detail::install_collector_hooks();
  return diffscope::detail::nvtx_initialize_injection(get_export_table);
}
