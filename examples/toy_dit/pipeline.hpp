// toy_dit: the annotated text-to-image pipeline, written once for any backend.
//
// A backend provides buffers (float* in its own memory) and the operations below; the CPU
// backend runs them as host loops, the GPU backend launches kernels on its stream without
// ever synchronising until the result is read back. The diffscope macros therefore see the
// same scope tree on both paths: host wall times on the CPU, GPU attribution on the GPU.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <diffscope/scope.hpp>

#include "model.hpp"

namespace toy_dit {

struct block_buffers {
  float *norm1, *w_qkv, *q_norm, *k_norm, *w_o, *norm2, *w_1, *w_2;
};

struct model_buffers {
  float* w_text;
  std::vector<block_buffers> blocks;
  float *norm_out, *w_out, *w_dec;
};

struct activations {
  float* prompt;    // text_tokens x dim
  float* text;      // text_tokens x dim, encoder output
  float* pooled;    // dim
  float* temb;      // steps x dim, timestep embeddings
  float* cond;      // steps x dim, conditioning vector per step
  float* rope_cos;  // tokens x head_dim/2
  float* rope_sin;  // tokens x head_dim/2
  float* latent;    // tokens x dim, what the scheduler updates
  float* hidden;    // tokens x dim, the transformer's residual stream
  float* normed;    // tokens x dim
  float* qkv;       // tokens x 3*dim
  float* attn;      // tokens x dim
  float* mlp;       // tokens x hidden
  float* velocity;  // tokens x dim, the model's prediction
  float* decoded;   // tokens x decoded_channels
};

struct run_result {
  std::vector<float> latent;    // final latent, tokens x dim
  std::vector<float> decoded;   // "image", tokens x decoded_channels
  double wall_ms = 0;           // TextEncodingStage start to decoded result on the host
  std::vector<double> step_ms;  // --step-events: CUDA-event time of each step (GPU path)
};

template <class Backend>
model_buffers load_weights(Backend& be, const host_weights& w) {
  DIFFSCOPE_FUNC();  // named "load_weights": host-to-device copies of the checkpoint
  model_buffers m{};
  m.w_text = be.upload(w.w_text);
  for (const block_weights& b : w.blocks) {
    m.blocks.push_back(block_buffers{be.upload(b.norm1), be.upload(b.w_qkv), be.upload(b.q_norm),
                                     be.upload(b.k_norm), be.upload(b.w_o), be.upload(b.norm2),
                                     be.upload(b.w_1), be.upload(b.w_2)});
  }
  m.norm_out = be.upload(w.norm_out);
  m.w_out = be.upload(w.w_out);
  m.w_dec = be.upload(w.w_dec);
  return m;
}

template <class Backend>
activations allocate_activations(Backend& be, const config& cfg) {
  DIFFSCOPE_FUNC();
  const auto n = [](long long a, long long b) { return static_cast<std::size_t>(a * b); };
  const int t = cfg.tokens, d = cfg.dim, half = cfg.head_dim() / 2;
  activations a{};
  a.prompt = be.alloc(n(text_tokens, d));
  a.text = be.alloc(n(text_tokens, d));
  a.pooled = be.alloc(n(1, d));
  a.temb = be.alloc(n(cfg.steps, d));
  a.cond = be.alloc(n(cfg.steps, d));
  a.rope_cos = be.alloc(n(t, half));
  a.rope_sin = be.alloc(n(t, half));
  a.latent = be.alloc(n(t, d));
  a.hidden = be.alloc(n(t, d));
  a.normed = be.alloc(n(t, d));
  a.qkv = be.alloc(n(t, 3 * d));
  a.attn = be.alloc(n(t, d));
  a.mlp = be.alloc(n(t, cfg.hidden()));
  a.velocity = be.alloc(n(t, d));
  a.decoded = be.alloc(n(t, decoded_channels));
  return a;
}

/// One DiT block on the residual stream `a.hidden`, conditioned on `cond` (dim floats).
template <class Backend>
void transformer_block(Backend& be, const config& cfg, const block_buffers& w, activations& a,
                       const float* cond, int index) {
  DIFFSCOPE_SCOPE("block");
  const int t = cfg.tokens, d = cfg.dim, h = cfg.heads, hd = cfg.head_dim(), f = cfg.hidden();
  {
    DIFFSCOPE_SCOPE("qkv_proj");
    be.rms_norm(a.normed, a.hidden, w.norm1, cond, t, d);
    be.sgemm(a.qkv, a.normed, w.w_qkv, t, 3 * d, d, activation::none, nullptr);
  }
  {
    DIFFSCOPE_NORM_ROPE("qk_norm_rope");
    be.qk_norm_rope(a.qkv, w.q_norm, w.k_norm, a.rope_cos, a.rope_sin, t, h, hd);
  }
  {
    DIFFSCOPE_ATTENTION("attention");
    be.attention(a.attn, a.qkv, t, h, hd);
  }
  {
    DIFFSCOPE_SCOPE("out_proj");
    be.sgemm(a.hidden, a.attn, w.w_o, t, d, d, activation::none, a.hidden);
  }
  {
    DIFFSCOPE_SCOPE("mlp");
    // --streams 2: odd blocks run their MLP on the second stream, ordered by events, so the
    // profile shows the same scope's work on two streams.
    const bool side = cfg.streams > 1 && index % 2 == 1;
    if (side) be.fork();
    be.rms_norm(a.normed, a.hidden, w.norm2, nullptr, t, d);
    be.sgemm(a.mlp, a.normed, w.w_1, t, f, d, activation::gelu, nullptr);
    be.sgemm(a.hidden, a.mlp, w.w_2, t, d, f, activation::none, a.hidden);
    if (side) be.join();
  }
}

template <class Backend>
void final_layer(Backend& be, const config& cfg, const model_buffers& m, activations& a,
                 const float* cond) {
  DIFFSCOPE_FUNC();
  be.rms_norm(a.normed, a.hidden, m.norm_out, cond, cfg.tokens, cfg.dim);
  be.sgemm(a.velocity, a.normed, m.w_out, cfg.tokens, cfg.dim, cfg.dim, activation::none, nullptr);
}

/// Runs the whole pipeline once. Weights and buffers are set up before the clock starts,
/// the way a server loads its model once and then serves requests.
template <class Backend>
run_result run_pipeline(Backend& be, const config& cfg, const host_weights& weights,
                        std::uint64_t seed) {
  const model_buffers m = load_weights(be, weights);
  activations a = allocate_activations(be, cfg);
  const int t = cfg.tokens, d = cfg.dim;
  const std::size_t latent_size = static_cast<std::size_t>(t) * static_cast<std::size_t>(d);
  std::vector<float> timesteps;
  run_result r;

  const auto start = std::chrono::steady_clock::now();
  {
    DIFFSCOPE_STAGE("TextEncodingStage");
    be.copy_from_host(a.prompt, make_prompt_embeddings(cfg, seed));
    be.sgemm(a.text, a.prompt, m.w_text, text_tokens, d, d, activation::gelu, nullptr);
    be.mean_rows(a.pooled, a.text, text_tokens, d);
  }
  {
    DIFFSCOPE_STAGE("TimestepPreparationStage");
    timesteps = make_timesteps(cfg.steps);
    be.copy_from_host(a.temb, timestep_embedding(timesteps, cfg.steps, d));
    be.add_row_vector(a.cond, a.temb, a.pooled, cfg.steps, d);
  }
  {
    DIFFSCOPE_STAGE("LatentPreparationStage");
    be.copy_from_host(a.latent, make_noise(cfg, seed));
    std::vector<float> cos_table, sin_table;
    make_rope_tables(t, cfg.head_dim(), cos_table, sin_table);
    be.copy_from_host(a.rope_cos, cos_table);
    be.copy_from_host(a.rope_sin, sin_table);
  }
  {
    DIFFSCOPE_STAGE("DenoisingStage");
    for (int i = 0; i < cfg.steps; ++i) {
      DIFFSCOPE_DENOISE_STEP(i);
      be.step_begin();
      const float* cond = a.cond + static_cast<std::size_t>(i) * static_cast<std::size_t>(d);
      be.copy(a.hidden, a.latent, latent_size);
      for (int b = 0; b < cfg.blocks; ++b) {
        transformer_block(be, cfg, m.blocks[static_cast<std::size_t>(b)], a, cond, b);
      }
      final_layer(be, cfg, m, a, cond);
      {
        DIFFSCOPE_SCOPE("scheduler_step");
        const float dt =
            timesteps[static_cast<std::size_t>(i) + 1] - timesteps[static_cast<std::size_t>(i)];
        be.euler_step(a.latent, a.velocity, dt, latent_size);
      }
      be.step_end();
    }
  }
  DIFFSCOPE_MARK("denoise_done");
  {
    DIFFSCOPE_STAGE("DecodingStage");
    be.sgemm(a.decoded, a.latent, m.w_dec, t, decoded_channels, d, activation::tanh, nullptr);
    // Reading the image back is the first (and only) wait for the GPU: on the GPU path this
    // stage's host time includes the whole queued denoise loop, its GPU time does not.
    be.copy_to_host(r.decoded, a.decoded,
                    static_cast<std::size_t>(t) * static_cast<std::size_t>(decoded_channels));
  }
  be.copy_to_host(r.latent, a.latent, latent_size);
  r.step_ms = be.step_times_ms();
  r.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace toy_dit
