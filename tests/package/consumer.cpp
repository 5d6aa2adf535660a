// The program every package test builds: annotated code as a user writes it. Prints one line
// that tests/package/run.sh checks ("diffscope consumer <VERSION> ok steps=3 sum=3").
#include <diffscope/scope.hpp>

#include <cstdio>

namespace {
int denoise(int steps) {
  DIFFSCOPE_STAGE("DenoisingStage");
  int sum = 0;
  for (int i = 0; i < steps; ++i) {
    DIFFSCOPE_DENOISE_STEP(i);
    DIFFSCOPE_SCOPE("transformer_block");
    sum += i;
  }
  return sum;
}
}  // namespace

int main() {
  const int sum = denoise(3);
  std::printf("diffscope consumer %s ok steps=3 sum=%d\n", DIFFSCOPE_VERSION_STRING, sum);
  return sum == 3 ? 0 : 1;
}
