// diffscope: steps, stages and requests: host and GPU time per denoise step, per stage and
// per request (each request with its own stages and steps), and which requests are
// warm-ups.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <diffscope/aggregate/accumulators.hpp>
#include <diffscope/aggregate/instances.hpp>
#include <diffscope/aggregate/scope_tree.hpp>
#include <diffscope/aggregate/thread_state.hpp>

namespace diffscope::detail {

struct step_acc {
  std::uint64_t calls = 0, host_ns = 0, first_start_ns = 0;
  gpu_acc gpu;
};
struct stage_acc {
  std::uint32_t node = no_node;
  std::uint64_t calls = 0, host_ns = 0, first_start_ns = 0;
  gpu_acc gpu;
  bool included = false;  // entered outside a warm-up
};
struct request_acc {
  std::string id;
  bool warmup = false, excluded = false;
  std::uint64_t calls = 0, host_ns = 0, start_ns = 0;
  gpu_acc gpu;
  std::vector<stage_acc> stages;  // in order of first entry within the request
  std::map<std::int64_t, step_acc> steps;
};

/// Guarded by the aggregator's mutex.
class timeline {
 public:
  /// The first `skip_requests` requests (warm-up ranges not counted) are warm-ups.
  explicit timeline(std::uint64_t skip_requests) : skip_requests_(skip_requests) {}

  /// Index of the stage whose scope is `node_id`, made at its first entry.
  std::uint32_t stage_index(std::uint32_t node_id, std::uint64_t t_ns, bool excluded) {
    for (std::size_t i = 0; i < stages_.size(); ++i) {
      if (stages_[i].node != node_id) continue;
      if (!excluded && !stages_[i].included) {
        stages_[i].included = true;
        stages_[i].first_start_ns = t_ns;  // first entry that counts
      }
      return static_cast<std::uint32_t>(i);
    }
    stage_acc s;
    s.node = node_id;
    s.first_start_ns = t_ns;
    s.included = !excluded;
    stages_.push_back(s);
    return static_cast<std::uint32_t>(stages_.size() - 1);
  }

  // A new request; `excluded` in: inside a warm-up already, out: this one is excluded.
  std::int32_t begin_request(std::string_view id, bool warmup, std::uint64_t t_ns, bool& excluded) {
    request_acc r;
    r.id = std::string(id);
    r.warmup = warmup;
    r.start_ns = t_ns;
    if (!warmup && counted_requests_++ < skip_requests_) r.warmup = true;
    r.excluded = excluded = excluded || r.warmup;
    requests_.push_back(std::move(r));
    return static_cast<std::int32_t>(requests_.size() - 1);
  }

  // The request's accumulator of global stage `stage`.
  stage_acc& request_stage(request_acc& r, std::int32_t stage, std::uint64_t t_ns) {
    const std::uint32_t node = stages_[static_cast<std::size_t>(stage)].node;
    for (stage_acc& s : r.stages)
      if (s.node == node) return s;
    stage_acc s;
    s.node = node;
    s.first_start_ns = t_ns;
    s.included = true;
    r.stages.push_back(s);
    return r.stages.back();
  }

  /// A closed range's host time `dur`, where it is a step, a stage or a request (its own
  /// and its request's figures).
  void add_host(const scope_frame& f, bool is_stage, bool is_request, std::uint64_t dur) {
    request_acc* rq = f.request >= 0 ? &requests_[static_cast<std::size_t>(f.request)] : nullptr;
    if (f.is_step) {
      auto add = [&](step_acc& s) {
        if (s.calls++ == 0) s.first_start_ns = f.start_ns;
        s.host_ns += dur;
      };
      if (!f.excluded) add(steps_[f.step]);
      if (rq != nullptr) add(rq->steps[f.step]);
    }
    if (is_stage && f.stage >= 0) {
      auto add = [&](stage_acc& s) {
        ++s.calls;
        s.host_ns += dur;
      };
      if (!f.excluded) add(stages_[static_cast<std::size_t>(f.stage)]);
      if (rq != nullptr) add(request_stage(*rq, f.stage, f.start_ns));
    }
    if (is_request && rq != nullptr) {
      ++rq->calls;
      rq->host_ns += dur;
    }
  }

  /// A finalised instance's GPU figures, where it is a step's, a stage's or a request's own.
  void add_gpu(const scope_instance& in, const gpu_acc& acc) {
    if (!in.excluded) {
      if (in.is_step) steps_[in.step].gpu.add(acc);
      if (in.stage >= 0) stages_[static_cast<std::size_t>(in.stage)].gpu.add(acc);
    }
    if (in.request >= 0) {
      request_acc& rq = requests_[static_cast<std::size_t>(in.request)];
      if (in.is_step) rq.steps[in.step].gpu.add(acc);
      if (in.stage >= 0) request_stage(rq, in.stage, 0).gpu.add(acc);
      if (in.is_request) rq.gpu.add(acc);
    }
  }

  const std::map<std::int64_t, step_acc>& steps() const noexcept { return steps_; }
  const std::vector<stage_acc>& stages() const noexcept { return stages_; }
  const std::vector<request_acc>& requests() const noexcept { return requests_; }

 private:
  std::map<std::int64_t, step_acc> steps_;
  std::vector<stage_acc> stages_;
  std::vector<request_acc> requests_;
  std::uint64_t counted_requests_ = 0;  // requests seen, warm-up ranges not counted
  const std::uint64_t skip_requests_;
};

}  // namespace diffscope::detail
