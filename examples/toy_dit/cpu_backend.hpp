// toy_dit: the CPU reference backend. Plain single-threaded loops with the same math as the
// GPU kernels (same formulas, same accumulation precision: fp32), arranged so the compiler
// can vectorise the inner loops.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include "model.hpp"

namespace toy_dit {

class cpu_backend {
 public:
  float* alloc(std::size_t n) {
    buffers_.push_back(std::make_unique<float[]>(n));
    return buffers_.back().get();
  }
  float* upload(const std::vector<float>& v) {
    float* p = alloc(v.size());
    copy_from_host(p, v);
    return p;
  }
  void copy_from_host(float* dst, const std::vector<float>& src) {
    std::memcpy(dst, src.data(), src.size() * sizeof(float));
  }
  void copy_to_host(std::vector<float>& dst, const float* src, std::size_t n) {
    dst.assign(src, src + n);
  }
  void copy(float* dst, const float* src, std::size_t n) {
    std::memcpy(dst, src, n * sizeof(float));
  }
  void fork() {}
  void join() {}
  // Per-step CUDA-event ground truth exists on the GPU path only.
  void step_begin() {}
  void step_end() {}
  std::vector<double> step_times_ms() { return {}; }

  /// out = act(a * b) + residual; a is m x k, b is k x n, all row-major. out may alias
  /// residual. Register tiles of 4 x 8 outputs with fixed trip counts, which gcc and clang
  /// vectorise even at -O2; each output still sums over k in order, like the GPU kernel.
  void sgemm(float* out, const float* a, const float* b, int m, int n, int k, activation act,
             const float* residual) {
    constexpr int tr = 4, tc = 8;
    for (int i0 = 0; i0 < m; i0 += tr) {
      for (int j0 = 0; j0 < n; j0 += tc) {
        float acc[tr][tc] = {};
        if (i0 + tr <= m && j0 + tc <= n) {
          for (int p = 0; p < k; ++p) {
            const float* bp = b + static_cast<std::size_t>(p) * n + j0;
            for (int r = 0; r < tr; ++r) {
              const float av = a[static_cast<std::size_t>(i0 + r) * k + p];
              for (int c = 0; c < tc; ++c) acc[r][c] += av * bp[c];
            }
          }
        } else {  // partial tile at the matrix edge
          const int rn = std::min(tr, m - i0), cn = std::min(tc, n - j0);
          for (int p = 0; p < k; ++p) {
            const float* bp = b + static_cast<std::size_t>(p) * n + j0;
            for (int r = 0; r < rn; ++r) {
              const float av = a[static_cast<std::size_t>(i0 + r) * k + p];
              for (int c = 0; c < cn; ++c) acc[r][c] += av * bp[c];
            }
          }
        }
        const int rn = std::min(tr, m - i0), cn = std::min(tc, n - j0);
        for (int r = 0; r < rn; ++r) {
          for (int c = 0; c < cn; ++c) {
            float v = acc[r][c];
            if (act == activation::gelu) v = gelu(v);
            if (act == activation::tanh) v = tanhf(v);
            const std::size_t idx = static_cast<std::size_t>(i0 + r) * n + (j0 + c);
            out[idx] = residual ? v + residual[idx] : v;
          }
        }
      }
    }
  }

  /// out = x / rms(x) * gain (+ shift), per row of `cols`.
  void rms_norm(float* out, const float* x, const float* gain, const float* shift, int rows,
                int cols) {
    for (int r = 0; r < rows; ++r) {
      const float* xr = x + static_cast<std::size_t>(r) * cols;
      float* orow = out + static_cast<std::size_t>(r) * cols;
      float ss = 0;
      for (int c = 0; c < cols; ++c) ss += xr[c] * xr[c];
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(cols) + norm_eps);
      for (int c = 0; c < cols; ++c) orow[c] = xr[c] * inv * gain[c] + (shift ? shift[c] : 0.0f);
    }
  }

  /// Per token and head: RMSNorm of q and k over the head dimension, then rotary embedding
  /// of consecutive pairs. qkv is tokens x [q | k | v], each dim = heads * head_dim wide.
  void qk_norm_rope(float* qkv, const float* q_gain, const float* k_gain, const float* cos_table,
                    const float* sin_table, int tokens, int heads, int head_dim) {
    const int dim = heads * head_dim, half = head_dim / 2;
    for (int t = 0; t < tokens; ++t) {
      for (int which = 0; which < 2; ++which) {
        const float* gain = which == 0 ? q_gain : k_gain;
        for (int h = 0; h < heads; ++h) {
          float* v = qkv + static_cast<std::size_t>(t) * 3 * dim + which * dim + h * head_dim;
          float ss = 0;
          for (int i = 0; i < head_dim; ++i) ss += v[i] * v[i];
          const float inv = 1.0f / std::sqrt(ss / static_cast<float>(head_dim) + norm_eps);
          const float* c = cos_table + static_cast<std::size_t>(t) * half;
          const float* s = sin_table + static_cast<std::size_t>(t) * half;
          for (int i = 0; i < half; ++i) {
            const float x0 = v[2 * i] * inv * gain[2 * i];
            const float x1 = v[2 * i + 1] * inv * gain[2 * i + 1];
            v[2 * i] = x0 * c[i] - x1 * s[i];
            v[2 * i + 1] = x0 * s[i] + x1 * c[i];
          }
        }
      }
    }
  }

  /// out (tokens x dim) = softmax(q k^T / sqrt(head_dim)) v per head, with an exact
  /// (two-pass) softmax. Inner loops run over chunks of 8 so they vectorise at -O2.
  void attention(float* out, const float* qkv, int tokens, int heads, int head_dim) {
    constexpr int chunk = 8;
    const int dim = heads * head_dim;
    const std::size_t ld = 3 * static_cast<std::size_t>(dim);
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    kt_.resize(static_cast<std::size_t>(head_dim) * tokens);
    scores_.resize(static_cast<std::size_t>(tokens));
    for (int h = 0; h < heads; ++h) {
      // K transposed (head_dim x tokens) so the score loop runs over contiguous keys.
      for (int j = 0; j < tokens; ++j) {
        for (int i = 0; i < head_dim; ++i) {
          kt_[static_cast<std::size_t>(i) * tokens + j] = qkv[j * ld + dim + h * head_dim + i];
        }
      }
      const float* v = qkv + 2 * static_cast<std::size_t>(dim) + h * head_dim;
      for (int q = 0; q < tokens; ++q) {
        const float* qv = qkv + q * ld + h * head_dim;
        for (int j0 = 0; j0 < tokens; j0 += chunk) {
          float s[chunk] = {};
          if (j0 + chunk <= tokens) {
            for (int i = 0; i < head_dim; ++i) {
              const float qi = qv[i] * scale;
              const float* ki = kt_.data() + static_cast<std::size_t>(i) * tokens + j0;
              for (int c = 0; c < chunk; ++c) s[c] += qi * ki[c];
            }
          } else {
            for (int i = 0; i < head_dim; ++i) {
              const float qi = qv[i] * scale;
              const float* ki = kt_.data() + static_cast<std::size_t>(i) * tokens + j0;
              for (int c = 0; c < tokens - j0; ++c) s[c] += qi * ki[c];
            }
          }
          for (int c = 0; c < chunk && j0 + c < tokens; ++c) {
            scores_[static_cast<std::size_t>(j0 + c)] = s[c];
          }
        }
        const float mx = *std::max_element(scores_.begin(), scores_.end());
        float sum = 0;
        for (float& sc : scores_) {
          sc = std::exp(sc - mx);
          sum += sc;
        }
        float* o = out + static_cast<std::size_t>(q) * dim + h * head_dim;
        for (int d0 = 0; d0 < head_dim; d0 += chunk) {
          float acc[chunk] = {};
          if (d0 + chunk <= head_dim) {
            for (int j = 0; j < tokens; ++j) {
              const float p = scores_[static_cast<std::size_t>(j)];
              const float* vj = v + j * ld + d0;
              for (int c = 0; c < chunk; ++c) acc[c] += p * vj[c];
            }
          } else {
            for (int j = 0; j < tokens; ++j) {
              const float p = scores_[static_cast<std::size_t>(j)];
              const float* vj = v + j * ld + d0;
              for (int c = 0; c < head_dim - d0; ++c) acc[c] += p * vj[c];
            }
          }
          for (int c = 0; c < chunk && d0 + c < head_dim; ++c) o[d0 + c] = acc[c] / sum;
        }
      }
    }
  }

  /// out (cols) = mean over rows of x (rows x cols).
  void mean_rows(float* out, const float* x, int rows, int cols) {
    for (int c = 0; c < cols; ++c) {
      float s = 0;
      for (int r = 0; r < rows; ++r) s += x[static_cast<std::size_t>(r) * cols + c];
      out[c] = s / static_cast<float>(rows);
    }
  }

  /// out (rows x cols) = x + v broadcast over rows.
  void add_row_vector(float* out, const float* x, const float* v, int rows, int cols) {
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < cols; ++c) {
        const std::size_t k = static_cast<std::size_t>(r) * cols + c;
        out[k] = x[k] + v[c];
      }
    }
  }

  /// Flow-matching Euler step: x += dt * v.
  void euler_step(float* x, const float* v, float dt, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) x[i] += dt * v[i];
  }

 private:
  std::vector<std::unique_ptr<float[]>> buffers_;
  std::vector<float> kt_, scores_;  // attention scratch, reused across calls
};

}  // namespace toy_dit
