/* A program that knows nothing of diffscope: plain NVTX C calls with the names SGLang emits
 * (--enable-layerwise-nvtx-marker), as torch.cuda.nvtx makes them. Run under
 * NVTX_INJECTION64_PATH=libdiffscope_inject.so with DIFFSCOPE_DUMP set, its dump must map
 * stage_<Stage> to `steps` entries and denoising_step_<i>_t<ts> to denoise_steps_ms.
 * Usage: plain_nvtx_app [steps] [exit_code] */
#include <stdio.h>
#include <stdlib.h>

#include <nvtx3/nvToolsExt.h>

static void busy_wait_us(long us) {
  volatile double x = 0;
  for (long i = 0; i < us * 200; ++i) x += (double)i * 1e-9;
}

int main(int argc, char** argv) {
  const int steps = argc > 1 ? atoi(argv[1]) : 4;
  const int exit_code = argc > 2 ? atoi(argv[2]) : 0;
  nvtxRangePushA("stage_TextEncodingStage");
  busy_wait_us(200);
  nvtxRangePop();
  nvtxRangePushA("stage_DenoisingStage");
  nvtxRangePushA("denoising_loop");
  for (int i = 0; i < steps; ++i) {
    char name[64];
    snprintf(name, sizeof name, "denoising_step_%d_t%d", i, 1000 - 50 * i);
    nvtxRangePushA(name);
    nvtxRangePushA("transformer.blocks.0.attn in=[[1, 4096, 3072]]");
    busy_wait_us(100);
    nvtxRangePop();
    nvtxRangePushA("scheduler_step");
    nvtxRangePop();
    nvtxRangePop();
  }
  nvtxRangePop();
  nvtxRangePop();
  nvtxRangePushA("stage_DecodingStage");
  busy_wait_us(100);
  nvtxRangePop();
  printf("plain_nvtx_app: %d steps\n", steps);
  return exit_code;
}
