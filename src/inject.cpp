// libdiffscope_inject.so: the collector as an NVTX injection library. A process started with
// NVTX_INJECTION64_PATH=/path/to/libdiffscope_inject.so routes the ranges of every NVTX copy
// in it (every shared object: Python extensions, PyTorch's torch.cuda.nvtx, our macros in any
// library) to this one collector, which starts from the DIFFSCOPE_* environment at the first
// range and writes its outputs at exit. Unlike the static injection (collector.hpp in an
// executable), this reaches all shared objects: docs/collector.md.
#define DIFFSCOPE_COLLECTOR_NO_STATIC_INJECTION
#include <diffscope/collector.hpp>

// The entry point NVTX looks up with dlsym in the library named by NVTX_INJECTION64_PATH,
// once per NVTX copy.
extern "C" __attribute__((visibility("default"))) int InitializeInjectionNvtx2(
    NvtxGetExportTableFunc_t get_export_table) {
  diffscope::detail::install_collector_hooks();
  return diffscope::detail::nvtx_initialize_injection(get_export_table);
}

// diffscope::set_timing_stream() in any shared object of the process forwards here (found
// with dlopen(NVTX_INJECTION64_PATH, RTLD_NOLOAD)): perf mode's timing stream for the calling
// thread. Python can call it through ctypes the same way.
extern "C" __attribute__((visibility("default"))) void diffscope_set_timing_stream(void* stream) {
  diffscope::detail::timing_stream_override() = stream;
}

// diffscope::set_timing_paused() forwards here the same way (ctypes: an int, 1 pauses).
extern "C" __attribute__((visibility("default"))) void diffscope_set_timing_paused(int paused) {
  diffscope::detail::apply_timing_pause(paused != 0);
}
