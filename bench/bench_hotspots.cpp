// Throughput and peak memory of `diffscope hotspots` on a generated torch.profiler-style
// trace (cpu_op, kernel and gpu_memcpy events with args): bench_hotspots [MB] [gzip_MB].
// Files go to /tmp and are deleted afterwards. Peak RSS is getrusage's ru_maxrss.
#include <sys/resource.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "lib/hotspot_input.hpp"
#include "lib/input.hpp"
#include "lib/trace_stream.hpp"

namespace {

const char* kernel_names[] = {
    "nvjet_tst_128x256_64x4_2x1_v_bz_coopB_TNT",
    "void flash::FlashAttnFwdSm90<cutlass::bfloat16_t, 128, 128, true>(flash::Params)",
    "fused_inplace_qknorm_rope_kernel<128>",
    "fuse_scale_shift_kernel<c10::BFloat16>",
    "void at::native::vectorized_elementwise_kernel<4, at::native::BinaryFunctor<c10::BFloat16, "
    "c10::BFloat16, c10::BFloat16, at::native::binary_internal::MulFunctor<float> >, "
    "std::array<char*, 3ul> >(int, at::native::BinaryFunctor<c10::BFloat16, c10::BFloat16, "
    "c10::BFloat16, at::native::binary_internal::MulFunctor<float> >, std::array<char*, 3ul>)",
    "ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)",
    "triton_poi_fused_add_mul_0",
};

std::string event(unsigned long i) {
  char buf[1024];
  const unsigned long ts = 1000000 + i * 3;
  switch (i % 4) {
    case 0:
      std::snprintf(buf, sizeof buf,
                    "{\"ph\": \"X\", \"cat\": \"cpu_op\", \"name\": \"aten::linear\", \"pid\": "
                    "1234, \"tid\": 1234, \"ts\": %lu.123, \"dur\": 12.5, \"args\": {\"External "
                    "id\": %lu, \"Record function id\": 0, \"Ev Idx\": %lu, \"Input Dims\": [[2, "
                    "4096, 3072], [3072, 3072], [3072]], \"Input type\": [\"c10::BFloat16\", "
                    "\"c10::BFloat16\", \"c10::BFloat16\"], \"Concrete Inputs\": [\"\", \"\", "
                    "\"\"], \"Sequence number\": %lu, \"Fwd thread id\": 0}}",
                    ts, i, i, i);
      break;
    case 3:
      std::snprintf(buf, sizeof buf,
                    "{\"ph\": \"X\", \"cat\": \"gpu_memcpy\", \"name\": \"Memcpy HtoD (Pageable -> "
                    "Device)\", \"pid\": 0, \"tid\": 7, \"ts\": %lu.5, \"dur\": 3.25, \"args\": "
                    "{\"External id\": %lu, \"device\": 0, \"context\": 1, \"stream\": 7, "
                    "\"correlation\": %lu, \"bytes\": 4096, \"memory bandwidth (GB/s)\": 1.26}}",
                    ts, i, i);
      break;
    default:
      std::snprintf(buf, sizeof buf,
                    "{\"ph\": \"X\", \"cat\": \"kernel\", \"name\": \"%s\", \"pid\": 0, \"tid\": "
                    "7, \"ts\": %lu.25, \"dur\": %lu.5, \"args\": {\"External id\": %lu, "
                    "\"queued\": 0, \"device\": 0, \"context\": 1, \"stream\": 7, "
                    "\"correlation\": %lu, \"registers per thread\": 128, \"shared memory\": "
                    "98304, \"blocks per SM\": 1.5, \"warps per SM\": 8, \"grid\": [132, 1, 1], "
                    "\"block\": [384, 1, 1], \"est. achieved occupancy %%\": 19}}",
                    kernel_names[(i / 4 + i) % 7], ts, 1 + i % 50, i, i);
  }
  return buf;
}

// Writes a trace of about `bytes` bytes; returns the number of events.
unsigned long generate(const std::string& path, unsigned long long bytes, bool gz) {
  std::FILE* f = gz ? nullptr : std::fopen(path.c_str(), "wb");
  gzFile g = gz ? gzopen(path.c_str(), "wb6") : nullptr;
  const auto put = [&](const std::string& s) {
    if (gz) {
      gzwrite(g, s.data(), static_cast<unsigned>(s.size()));
    } else {
      std::fwrite(s.data(), 1, s.size(), f);
    }
  };
  put("{\"schemaVersion\": 1, \"deviceProperties\": [{\"id\": 0, \"name\": \"NVIDIA H200\"}], "
      "\"traceEvents\": [\n");
  unsigned long long written = 0;
  unsigned long i = 0;
  std::string chunk;
  while (written < bytes) {
    chunk.clear();
    for (int k = 0; k < 1000; ++k, ++i) {
      if (i > 0) chunk += ",\n";
      chunk += event(i);
    }
    written += chunk.size();
    put(chunk);
  }
  put("\n], \"traceName\": \"bench.pt.trace.json\", \"displayTimeUnit\": \"ms\"}\n");
  if (gz) {
    gzclose(g);
  } else {
    std::fclose(f);
  }
  return i;
}

long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

void measure(const std::string& path, double mb, bool gz) {
  const unsigned long events = generate(path, static_cast<unsigned long long>(mb * 1e6), gz);
  const long rss_before = peak_rss_kb();
  const auto t0 = std::chrono::steady_clock::now();
  diffscope::cli::trace_scan_info info;
  diffscope::cli::byte_source in(path);
  const auto src = diffscope::cli::hotspots_from_trace(in, &info);
  const auto rep =
      diffscope::analyze_hotspots(src.res, diffscope::kernel_classifier(), &src.overlap);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "%s: %lu events, %.1f MB JSON%s, %zu kernel names, %.2f s, %.3f GB/s (uncompressed), "
      "peak RSS %.1f MB (before the scan %.1f MB)\n",
      gz ? "gzip " : "plain", events, static_cast<double>(info.bytes) / 1e6, gz ? " (gzip)" : "",
      rep.kernels.size(), s, static_cast<double>(info.bytes) / 1e9 / s,
      static_cast<double>(peak_rss_kb()) / 1024.0, static_cast<double>(rss_before) / 1024.0);
  std::remove(path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const double mb = argc > 1 ? std::atof(argv[1]) : 1000;
  const double gz_mb = argc > 2 ? std::atof(argv[2]) : 200;
  try {
    if (gz_mb > 0) measure("/tmp/diffscope_bench_hotspots.json.gz", gz_mb, true);
    if (mb > 0) measure("/tmp/diffscope_bench_hotspots.json", mb, false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_hotspots: %s\n", e.what());
    return 1;
  }
  return 0;
}
