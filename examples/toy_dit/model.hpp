// toy_dit: configuration, deterministic weights and host-side helpers shared by the CPU and
// GPU paths. Everything here is plain host C++17: both paths start from the very same
// numbers, so their results can be compared element by element.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

// The few helpers both paths share are compiled for host and device under nvcc.
#ifdef __CUDACC__
#define TOY_DIT_HOST_DEVICE __host__ __device__
#else
#define TOY_DIT_HOST_DEVICE
#endif

namespace toy_dit {

inline constexpr int max_head_dim = 128;     // attention kernel keeps one query row in registers
inline constexpr int mlp_ratio = 2;          // MLP hidden width = mlp_ratio * dim
inline constexpr int text_tokens = 32;       // length of the fake prompt
inline constexpr int decoded_channels = 48;  // "pixels" per token out of the fake VAE
inline constexpr float norm_eps = 1e-6f;
inline constexpr double rope_theta = 10000.0;
inline constexpr double flow_shift = 3.0;  // SD3/Flux-style shifted flow-matching schedule
inline constexpr std::uint64_t default_seed = 0x5eed2025ULL;

struct config {
  int tokens = 256;
  int dim = 256;
  int heads = 4;
  int blocks = 4;
  int steps = 10;
  int streams = 1;           // 2: MLP of odd blocks on a second stream (GPU path)
  bool step_events = false;  // GPU path: time each step with CUDA events (ground truth)

  int head_dim() const { return dim / heads; }
  int hidden() const { return dim * mlp_ratio; }
};

/// 64-bit LCG (Knuth's MMIX constants): tiny, fast and bit-for-bit reproducible everywhere.
class lcg {
 public:
  explicit lcg(std::uint64_t seed) : state_(seed) {}
  /// Uniform in [-1, 1), from the top 24 bits (exactly representable as float).
  float uniform() {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    const auto bits = static_cast<std::uint32_t>(state_ >> 40);
    return static_cast<float>(bits) * (2.0f / 16777216.0f) - 1.0f;
  }
  /// Approximately standard normal: sum of four uniforms (variance 4/3) rescaled. Pure
  /// arithmetic, so no libm difference can change the initial latent.
  float normal() {
    const float s = uniform() + uniform() + uniform() + uniform();
    return s * 0.8660254037844386f;  // sqrt(3/4)
  }

 private:
  std::uint64_t state_;
};

/// Matrix with entries of variance 1/fan_in, so activations keep unit scale through a matmul.
inline std::vector<float> random_matrix(lcg& rng, int rows, int cols) {
  std::vector<float> m(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols));
  const float scale = std::sqrt(3.0f / static_cast<float>(rows));  // uniform variance = 1/3
  for (float& v : m) v = rng.uniform() * scale;
  return m;
}

/// Norm gains near 1, not exactly 1, so a wrong gain index shows up in the checksum.
inline std::vector<float> random_gain(lcg& rng, int n) {
  std::vector<float> g(static_cast<std::size_t>(n));
  for (float& v : g) v = 1.0f + 0.1f * rng.uniform();
  return g;
}

struct block_weights {
  std::vector<float> norm1, w_qkv, q_norm, k_norm, w_o, norm2, w_1, w_2;
};

struct host_weights {
  std::vector<float> w_text;  // dim x dim: the whole "text encoder"
  std::vector<block_weights> blocks;
  std::vector<float> norm_out, w_out;  // final layer: RMSNorm, dim x dim projection
  std::vector<float> w_dec;            // dim x decoded_channels: the whole "VAE"
};

inline host_weights make_weights(const config& cfg, std::uint64_t seed) {
  lcg rng(seed);
  const int d = cfg.dim, hd = cfg.head_dim(), f = cfg.hidden();
  host_weights w;
  w.w_text = random_matrix(rng, d, d);
  w.blocks.resize(static_cast<std::size_t>(cfg.blocks));
  for (block_weights& b : w.blocks) {
    b.norm1 = random_gain(rng, d);
    b.w_qkv = random_matrix(rng, d, 3 * d);
    b.q_norm = random_gain(rng, hd);
    b.k_norm = random_gain(rng, hd);
    b.w_o = random_matrix(rng, d, d);
    b.norm2 = random_gain(rng, d);
    b.w_1 = random_matrix(rng, d, f);
    b.w_2 = random_matrix(rng, f, d);
  }
  w.norm_out = random_gain(rng, d);
  w.w_out = random_matrix(rng, d, d);
  w.w_dec = random_matrix(rng, d, decoded_channels);
  return w;
}

/// The fake prompt's token embeddings (text_tokens x dim).
inline std::vector<float> make_prompt_embeddings(const config& cfg, std::uint64_t seed) {
  lcg rng(seed ^ 0x7e47ULL);
  std::vector<float> e(static_cast<std::size_t>(text_tokens) * static_cast<std::size_t>(cfg.dim));
  for (float& v : e) v = rng.normal();
  return e;
}

/// The initial noise latent (tokens x dim).
inline std::vector<float> make_noise(const config& cfg, std::uint64_t seed) {
  lcg rng(seed ^ 0x1a7e47ULL);
  std::vector<float> x(static_cast<std::size_t>(cfg.tokens) * static_cast<std::size_t>(cfg.dim));
  for (float& v : x) v = rng.normal();
  return x;
}

/// steps + 1 flow-matching times from 1 (pure noise) down to 0, shifted towards the noisy end.
inline std::vector<float> make_timesteps(int steps) {
  std::vector<float> t(static_cast<std::size_t>(steps) + 1);
  for (int i = 0; i <= steps; ++i) {
    const double u = 1.0 - static_cast<double>(i) / steps;
    t[static_cast<std::size_t>(i)] =
        static_cast<float>(flow_shift * u / (1.0 + (flow_shift - 1.0) * u));
  }
  return t;
}

/// Sinusoidal embedding of each step's time (steps x dim), computed in double on the host.
inline std::vector<float> timestep_embedding(const std::vector<float>& t, int steps, int dim) {
  std::vector<float> e(static_cast<std::size_t>(steps) * static_cast<std::size_t>(dim));
  const int half = dim / 2;
  for (int s = 0; s < steps; ++s) {
    for (int i = 0; i < half; ++i) {
      const double freq = std::exp(-std::log(10000.0) * i / half);
      const double arg = 1000.0 * t[static_cast<std::size_t>(s)] * freq;
      const std::size_t row = static_cast<std::size_t>(s) * static_cast<std::size_t>(dim);
      e[row + 2 * static_cast<std::size_t>(i)] = static_cast<float>(std::sin(arg));
      e[row + 2 * static_cast<std::size_t>(i) + 1] = static_cast<float>(std::cos(arg));
    }
  }
  return e;
}

/// RoPE tables (tokens x head_dim/2), computed once on the host so both paths rotate by
/// bit-identical angles.
inline void make_rope_tables(int tokens, int head_dim, std::vector<float>& cos_table,
                             std::vector<float>& sin_table) {
  const int half = head_dim / 2;
  cos_table.resize(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(half));
  sin_table.resize(cos_table.size());
  for (int p = 0; p < tokens; ++p) {
    for (int i = 0; i < half; ++i) {
      const double angle = p * std::pow(rope_theta, -2.0 * i / head_dim);
      const std::size_t k = static_cast<std::size_t>(p) * static_cast<std::size_t>(half) +
                            static_cast<std::size_t>(i);
      cos_table[k] = static_cast<float>(std::cos(angle));
      sin_table[k] = static_cast<float>(std::sin(angle));
    }
  }
}

/// tanh-approximation GELU, written once for host and device.
TOY_DIT_HOST_DEVICE inline float gelu(float x) {
  const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}

enum class activation { none, gelu, tanh };

}  // namespace toy_dit
