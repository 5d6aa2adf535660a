/* A program that misbehaves on request, for the fault matrix (tests/tools/fault_matrix.py).
 * It knows nothing of diffscope: plain NVTX calls, collected through libdiffscope_inject.so.
 *   fault_app exit N        ranges, then exit N
 *   fault_app signal SIG    ranges, then raise SIG inside an open range (KILL, SEGV, ...)
 *   fault_app linger MS     ranges, then fork a grandchild that outlives this process by MS
 *                           milliseconds, emits ranges itself and exits 0; this one exits 0
 *   fault_app hang          ranges, prints "ready", then sleeps until killed
 *   fault_app unclosed N    N nested ranges pushed and never popped, then exit 0
 *   fault_app names N       N ranges with distinct names under one parent, then exit 0 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nvtx3/nvToolsExt.h>

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void some_steps(int steps) {
  nvtxRangePushA("stage_DenoisingStage");
  for (int i = 0; i < steps; ++i) {
    char name[64];
    snprintf(name, sizeof name, "denoising_step_%d", i);
    nvtxRangePushA(name);
    nvtxRangePushA("transformer.blocks.0.attn");
    nvtxRangePop();
    nvtxRangePop();
  }
  nvtxRangePop();
}

static int usage(void) {
  fprintf(stderr, "usage: fault_app exit N | signal SIG | linger MS | hang | unclosed N | names N\n");
  return 2;
}

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const char* mode = argv[1];
  const long arg = argc > 2 ? atol(argv[2]) : 0;
  if (strcmp(mode, "exit") == 0) {
    some_steps(3);
    printf("fault_app: exit %ld\n", arg);
    return (int)arg;
  }
  if (strcmp(mode, "signal") == 0) {
    const int sig = argc > 2 && strcmp(argv[2], "KILL") == 0   ? SIGKILL
                    : argc > 2 && strcmp(argv[2], "SEGV") == 0 ? SIGSEGV
                    : argc > 2 && strcmp(argv[2], "ABRT") == 0 ? SIGABRT
                                                                : SIGTERM;
    some_steps(3);
    nvtxRangePushA("stage_DecodingStage");
    fflush(stdout);
    signal(sig, SIG_DFL);
    raise(sig);
    return 1; /* not reached */
  }
  if (strcmp(mode, "linger") == 0) {
    some_steps(2);
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
      /* A daemon-like grandchild: detached from the output, so nothing waits for it. */
      setsid();
      freopen("/dev/null", "w", stdout);
      dup2(fileno(stdout), 2);
      sleep_ms(arg);
      some_steps(2);
      return 0;
    }
    return pid < 0 ? 1 : 0;
  }
  if (strcmp(mode, "hang") == 0) {
    some_steps(2);
    printf("ready\n");
    fflush(stdout);
    for (;;) sleep_ms(1000);
  }
  if (strcmp(mode, "unclosed") == 0) {
    some_steps(1);
    nvtxRangePushA("stage_DenoisingStage");
    for (long i = 0; i < arg; ++i) {
      char name[64];
      snprintf(name, sizeof name, "left_open_%ld", i);
      nvtxRangePushA(name);
    }
    return 0;
  }
  if (strcmp(mode, "names") == 0) {
    nvtxRangePushA("stage_DenoisingStage");
    for (long i = 0; i < arg; ++i) {
      char name[64];
      snprintf(name, sizeof name, "module_%ld in=[[1, %ld]]", i, i);
      nvtxRangePushA(name);
      nvtxRangePop();
    }
    nvtxRangePop();
    return 0;
  }
  return usage();
}
