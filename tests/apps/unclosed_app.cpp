// Leaves ranges open and returns from main: run with DIFFSCOPE_DUMP (and DIFFSCOPE_SUMMARY),
// the collector's exit hook, which runs after the main thread's thread-locals are gone, must
// still count them as unclosed at stop and name the innermost one of each thread. A worker
// thread ends with one open too. Exits with the code given as argument (default 0).
#include <diffscope/collector.hpp>

#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
  nvtxRangePushA("request_r1");
  nvtxRangePushA("stage_DenoisingStage");
  nvtxRangePushA("denoising_step_3_t900");
  nvtxRangePushA("attention");
  nvtxRangePop();
  std::thread([] { nvtxRangePushA("worker_left_open"); }).join();
  return argc > 1 ? std::atoi(argv[1]) : 0;
}
