/* A stand-in for libnvidia-ml.so.1 (loaded through DIFFSCOPE_NVML_LIB) so that the idle check
 * of `diffscope ab` runs on machines without a GPU: two GPUs with the ABI of the real entry
 * points it uses. GPU 0 is busy while FAKE_NVML_BUSY is set ("pid,MiB,util%") and, when
 * FAKE_NVML_BUSY_UNTIL is set, only until that time (seconds since the epoch); GPU 1 is idle
 * unless FAKE_NVML_ALL_BUSY is set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  unsigned int pid;
  unsigned long long used;
  unsigned int gi, ci;
} process_v2;
typedef struct {
  unsigned int version;
  unsigned long long total, reserved, free, used;
} memory_v2;
typedef struct {
  unsigned int gpu, memory;
} utilization;

static int busy(long dev, unsigned* pid, unsigned long long* mib, unsigned* util) {
  const char* b = getenv("FAKE_NVML_BUSY");
  if (b == NULL || (dev == 1 && getenv("FAKE_NVML_ALL_BUSY") == NULL)) return 0;
  const char* until = getenv("FAKE_NVML_BUSY_UNTIL");
  if (until != NULL && time(NULL) >= atol(until)) return 0;
  if (sscanf(b, "%u,%llu,%u", pid, mib, util) != 3) return 0;
  return 1;
}

int nvmlInit_v2(void) {
  return 0;
}
int nvmlShutdown(void) {
  return 0;
}
const char* nvmlErrorString(int r) {
  return r == 7 ? "Insufficient Size" : "Fake Error";
}
int nvmlDeviceGetCount_v2(unsigned* n) {
  *n = 2;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void** d) {
  if (i > 1) return 2;
  *d = (void*)(long)(i + 1);
  return 0;
}
int nvmlDeviceGetName(void* d, char* buf, unsigned n) {
  snprintf(buf, n, "Fake GPU %ld", (long)d - 1);
  return 0;
}
int nvmlDeviceGetUUID(void* d, char* buf, unsigned n) {
  snprintf(buf, n, "GPU-fake-%ld", (long)d - 1);
  return 0;
}
int nvmlDeviceGetMemoryInfo_v2(void* d, memory_v2* m) {
  unsigned pid, util;
  unsigned long long mib = 0;
  if (m->version != ((unsigned)sizeof(memory_v2) | (2u << 24))) return 2;
  if (!busy((long)d - 1, &pid, &mib, &util)) mib = 1;
  m->total = 141ULL << 30;
  m->reserved = 512ULL << 20; /* never counted by the idle rule */
  m->used = mib << 20;
  m->free = m->total - m->reserved - m->used;
  return 0;
}
int nvmlDeviceGetComputeRunningProcesses_v3(void* d, unsigned* count, process_v2* out) {
  unsigned pid, util;
  unsigned long long mib;
  if (!busy((long)d - 1, &pid, &mib, &util)) {
    *count = 0;
    return 0;
  }
  if (*count < 1) {
    *count = 1;
    return 7; /* NVML_ERROR_INSUFFICIENT_SIZE */
  }
  *count = 1;
  out[0].pid = pid;
  out[0].used = mib << 20;
  out[0].gi = out[0].ci = 0xFFFFFFFFu;
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* d, utilization* u) {
  unsigned pid, util = 0;
  unsigned long long mib;
  if (!busy((long)d - 1, &pid, &mib, &util)) util = 0;
  u->gpu = util;
  u->memory = 0;
  return 0;
}
