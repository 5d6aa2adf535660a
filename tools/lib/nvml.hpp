// NVML through dlopen("libnvidia-ml.so.1") with our own minimal declarations (no nvml.h, no
// link-time dependency): the command builds and runs without a driver and says so when asked
// for a GPU there. `diffscope ab` checks with it that its GPU is idle (docs/ab.md).
#pragma once

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <diffscope/config.hpp>

namespace diffscope::cli::nvml {

/// What `diffscope ab` calls idle: the SGLang benchmark helper's rule (no compute process,
/// memory.used <= 32 MiB, utilisation <= 5 %).
struct idle_limits {
  std::uint64_t max_used_mib = 32;
  unsigned max_util_pct = 5;
};

struct gpu_process {
  unsigned pid = 0;
  std::uint64_t used_mib = 0;
  bool used_known = true;  ///< NVML may not say (NVML_VALUE_NOT_AVAILABLE)
};

/// One reading of one GPU. A figure NVML could not give is marked, and counts as not idle.
struct gpu_reading {
  unsigned index = 0;
  std::string uuid, name;
  std::vector<gpu_process> processes;
  bool processes_known = false;
  std::uint64_t used_mib = 0;
  bool used_known = false;
  const char* used_figure = "";  ///< which NVML figure used_mib is
  unsigned util_pct = 0;
  bool util_known = false;
  std::string error;  ///< a query that failed, with NVML's words
};

/// Why a reading is not idle, one phrase each; empty when it is idle.
inline std::vector<std::string> idle_problems(const gpu_reading& r, const idle_limits& lim = {}) {
  std::vector<std::string> why;
  if (!r.error.empty()) why.push_back(r.error);
  if (!r.processes_known) {
    why.push_back("compute processes unknown");
  } else if (!r.processes.empty()) {
    std::string s = std::to_string(r.processes.size()) + " compute process" +
                    (r.processes.size() == 1 ? "" : "es") + " (";
    for (std::size_t i = 0; i < r.processes.size(); ++i) {
      const gpu_process& p = r.processes[i];
      s += (i ? ", " : "") + std::string("pid ") + std::to_string(p.pid) + ": " +
           (p.used_known ? std::to_string(p.used_mib) + " MiB" : std::string("? MiB"));
    }
    why.push_back(s + ")");
  }
  if (!r.used_known)
    why.push_back("memory use unknown");
  else if (r.used_mib > lim.max_used_mib)
    why.push_back(std::to_string(r.used_mib) + " MiB used (> " + std::to_string(lim.max_used_mib) +
                  " MiB)");
  if (!r.util_known)
    why.push_back("utilisation unknown");
  else if (r.util_pct > lim.max_util_pct)
    why.push_back(std::to_string(r.util_pct) + "% utilisation (> " +
                  std::to_string(lim.max_util_pct) + "%)");
  return why;
}

/// "GPU 0 (NVIDIA H200): 0 compute processes, 0 MiB used, 0% utilisation".
inline std::string describe(const gpu_reading& r) {
  std::string s = "GPU " + std::to_string(r.index) + (r.name.empty() ? "" : " (" + r.name + ")") +
                  ": " + (r.processes_known ? std::to_string(r.processes.size()) : "?") +
                  " compute processes, " +
                  (r.used_known ? std::to_string(r.used_mib) : std::string("?")) + " MiB used [" +
                  r.used_figure + "], " +
                  (r.util_known ? std::to_string(r.util_pct) : std::string("?")) + "% utilisation";
  return s;
}

namespace abi {   // the few NVML types and entry points we use, as nvml.h declares them
using ret = int;  // nvmlReturn_t
using device = struct opaque_device*;
inline constexpr ret success = 0;
inline constexpr ret insufficient_size = 7;
inline constexpr unsigned long long value_not_available = ~0ULL;
struct memory_v1 {
  unsigned long long total, free, used;
};
struct memory_v2 {
  unsigned int version;
  unsigned long long total, reserved, free, used;
};
// NVML_STRUCT_VERSION(Memory, 2): the struct size in the low bits, the version in the top byte.
inline constexpr unsigned memory_v2_version = static_cast<unsigned>(sizeof(memory_v2)) | (2u << 24);
struct process_v1 {  // nvmlDeviceGetComputeRunningProcesses (unversioned)
  unsigned int pid;
  unsigned long long used_gpu_memory;
};
struct process_v2 {  // _v2 and _v3 (nvmlProcessInfo_v2_t / nvmlProcessInfo_t)
  unsigned int pid;
  unsigned long long used_gpu_memory;
  unsigned int gpu_instance_id, compute_instance_id;
};
struct utilization {
  unsigned int gpu, memory;
};
}  // namespace abi

/// The loaded library. open() once; every query after a failed open() is refused.
class library {
 public:
  library() = default;
  library(const library&) = delete;
  library& operator=(const library&) = delete;
  ~library() {
    if (shutdown_ && initialised_) shutdown_();
    if (handle_) ::dlclose(handle_);
  }

  /// Loads and initialises NVML. Returns "" or why not (one phrase). DIFFSCOPE_NVML_LIB
  /// names another file (tests, unusual installs).
  std::string open() {
    const char* env = config::raw("DIFFSCOPE_NVML_LIB");
    const std::string path = env != nullptr ? env : "libnvidia-ml.so.1";
    handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) {
      const char* e = ::dlerror();
      return "cannot load " + path + " (" + (e ? e : "unknown error") + "): no NVIDIA driver here";
    }
    if (!sym(init_, "nvmlInit_v2") || !sym(shutdown_, "nvmlShutdown") ||
        !sym(count_, "nvmlDeviceGetCount_v2") || !sym(by_index_, "nvmlDeviceGetHandleByIndex_v2") ||
        !sym(util_, "nvmlDeviceGetUtilizationRates"))
      return path + " lacks nvmlInit_v2 and the other entry points used (driver too old?)";
    sym(error_string_, "nvmlErrorString");
    sym(name_, "nvmlDeviceGetName");
    sym(uuid_, "nvmlDeviceGetUUID");
    sym(memory_v2_, "nvmlDeviceGetMemoryInfo_v2");
    sym(memory_v1_, "nvmlDeviceGetMemoryInfo");
    if (!sym(processes_v2_, "nvmlDeviceGetComputeRunningProcesses_v3"))
      sym(processes_v2_, "nvmlDeviceGetComputeRunningProcesses_v2");
    sym(processes_v1_, "nvmlDeviceGetComputeRunningProcesses");
    const abi::ret r = init_();
    if (r != abi::success) return "nvmlInit failed: " + error_text(r);
    initialised_ = true;
    return "";
  }

  /// Number of GPUs, or -1 with `why` set.
  int device_count(std::string& why) const {
    unsigned n = 0;
    const abi::ret r = count_(&n);
    if (r != abi::success) {
      why = "nvmlDeviceGetCount failed: " + error_text(r);
      return -1;
    }
    return static_cast<int>(n);
  }

  /// The UUID of GPU `index` ("GPU-..."), "" when NVML does not give it.
  std::string uuid(unsigned index) const {
    abi::device d = nullptr;
    char buf[96] = {};  // NVML_DEVICE_UUID_V2_BUFFER_SIZE
    if (!uuid_ || by_index_(index, &d) != abi::success || uuid_(d, buf, sizeof buf) != abi::success)
      return "";
    return buf;
  }

  gpu_reading read(unsigned index) const {
    gpu_reading g;
    g.index = index;
    abi::device d = nullptr;
    if (const abi::ret r = by_index_(index, &d); r != abi::success) {
      g.error =
          "nvmlDeviceGetHandleByIndex(" + std::to_string(index) + ") failed: " + error_text(r);
      return g;
    }
    char buf[96] = {};
    if (name_ && name_(d, buf, sizeof buf) == abi::success) g.name = buf;
    if (uuid_ && uuid_(d, buf, sizeof buf) == abi::success) g.uuid = buf;
    read_processes(d, g);
    read_memory(d, g);
    abi::utilization u{};
    if (const abi::ret r = util_(d, &u); r == abi::success) {
      g.util_pct = u.gpu;
      g.util_known = true;
    } else {
      note(g, "nvmlDeviceGetUtilizationRates: " + error_text(r));
    }
    return g;
  }

 private:
  template <class F>
  bool sym(F& f, const char* name) {
    f = reinterpret_cast<F>(::dlsym(handle_, name));
    return f != nullptr;
  }

  std::string error_text(abi::ret r) const {
    const char* s = error_string_ ? error_string_(r) : nullptr;
    return (s ? std::string(s) : std::string("error")) + " (" + std::to_string(r) + ")";
  }

  static void note(gpu_reading& g, const std::string& what) {
    g.error += (g.error.empty() ? "" : "; ") + what;
  }

  static std::uint64_t mib(unsigned long long bytes) { return (bytes + (1ULL << 19)) >> 20; }

  // The list can grow between the size query and the fetch: retry a few times.
  template <class P, class F>
  static abi::ret fetch(F f, abi::device d, std::vector<P>& out) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      unsigned n = static_cast<unsigned>(out.size());
      abi::ret r = f(d, &n, out.empty() ? nullptr : out.data());
      if (r == abi::success) {
        out.resize(n);
        return r;
      }
      if (r != abi::insufficient_size) return r;
      out.resize(n + 8);
    }
    return abi::insufficient_size;
  }

  void read_processes(abi::device d, gpu_reading& g) const {
    abi::ret r = -1;
    if (processes_v2_) {
      std::vector<abi::process_v2> p;
      r = fetch(processes_v2_, d, p);
      if (r == abi::success)
        for (const auto& x : p) add_process(g, x.pid, x.used_gpu_memory);
    } else if (processes_v1_) {
      std::vector<abi::process_v1> p;
      r = fetch(processes_v1_, d, p);
      if (r == abi::success)
        for (const auto& x : p) add_process(g, x.pid, x.used_gpu_memory);
    } else {
      note(g, "no nvmlDeviceGetComputeRunningProcesses");
      return;
    }
    if (r == abi::success)
      g.processes_known = true;
    else
      note(g, "nvmlDeviceGetComputeRunningProcesses: " + error_text(r));
  }

  static void add_process(gpu_reading& g, unsigned pid, unsigned long long bytes) {
    gpu_process p;
    p.pid = pid;
    p.used_known = bytes != abi::value_not_available;
    p.used_mib = p.used_known ? mib(bytes) : 0;
    g.processes.push_back(p);
  }

  // v2's `used` leaves out the memory the driver and firmware reserve for themselves (hundreds
  // of MiB on a Hopper part, in use on an idle GPU); it is what nvidia-smi shows as
  // memory.used, the figure of the 32 MiB rule. v1's `used` includes that reservation on
  // drivers that have one, so it is only the fallback for drivers without _v2.
  void read_memory(abi::device d, gpu_reading& g) const {
    if (memory_v2_) {
      abi::memory_v2 m{};
      m.version = abi::memory_v2_version;
      if (const abi::ret r = memory_v2_(d, &m); r == abi::success) {
        g.used_mib = mib(m.used);
        g.used_known = true;
        g.used_figure = "nvmlDeviceGetMemoryInfo_v2 used, driver reservation excluded";
        return;
      }
    }
    if (memory_v1_) {
      abi::memory_v1 m{};
      if (const abi::ret r = memory_v1_(d, &m); r == abi::success) {
        g.used_mib = mib(m.used);
        g.used_known = true;
        g.used_figure = "nvmlDeviceGetMemoryInfo used (v1)";
        return;
      } else {
        note(g, "nvmlDeviceGetMemoryInfo: " + error_text(r));
        return;
      }
    }
    note(g, "no nvmlDeviceGetMemoryInfo");
  }

  void* handle_ = nullptr;
  bool initialised_ = false;
  abi::ret (*init_)() = nullptr;
  abi::ret (*shutdown_)() = nullptr;
  const char* (*error_string_)(abi::ret) = nullptr;
  abi::ret (*count_)(unsigned*) = nullptr;
  abi::ret (*by_index_)(unsigned, abi::device*) = nullptr;
  abi::ret (*name_)(abi::device, char*, unsigned) = nullptr;
  abi::ret (*uuid_)(abi::device, char*, unsigned) = nullptr;
  abi::ret (*memory_v2_)(abi::device, abi::memory_v2*) = nullptr;
  abi::ret (*memory_v1_)(abi::device, abi::memory_v1*) = nullptr;
  abi::ret (*processes_v2_)(abi::device, unsigned*, abi::process_v2*) = nullptr;
  abi::ret (*processes_v1_)(abi::device, unsigned*, abi::process_v1*) = nullptr;
  abi::ret (*util_)(abi::device, abi::utilization*) = nullptr;
};

}  // namespace diffscope::cli::nvml
