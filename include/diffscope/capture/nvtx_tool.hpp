// diffscope: the collector as the process's NVTX tool.
//
// NVTX calls in every shared object of the process (our macros, torch.cuda.nvtx, SGLang's
// markers) are routed here once an NVTX copy initialises and finds our entry point, either
// statically (collector.hpp sets the weak InitializeInjectionNvtx2_fnptr) or through
// NVTX_INJECTION64_PATH=libdiffscope_inject.so. Handlers touch a thread-local stack through
// the range sink (range_sink.hpp); they never call CUPTI. The handlers are templates over the
// sink, bound once, below, to the aggregator: no virtual call per range.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nvtx3/nvToolsExt.h>  // also brings the injection interface (nvtxDetail/nvtxTypes.h)

#include <diffscope/aggregate/aggregator.hpp>  // the sink bound below (nvtx_range_sink)
#include <diffscope/capture/event_timer.hpp>
#include <diffscope/capture/range_sink.hpp>
#include <diffscope/sglang/range_names.hpp>
#include <diffscope/util/clock.hpp>

namespace diffscope::detail {

/// The range sink the NVTX tool feeds: the one place it names the aggregator. Everything
/// else reaches it through range_sink.hpp's interface.
using nvtx_range_sink = aggregator;
static_assert(is_range_sink_v<nvtx_range_sink>, "the NVTX tool's sink is a range sink");

/// A domain handle we hand out: equal names share one record, whichever NVTX copy asks.
struct nvtx_domain_record {
  std::string name;
  std::optional<range_domain> kind;  ///< empty: a domain we do not collect
};

/// A registered string we hand out. The name id is cached per aggregator epoch so a
/// registered push costs no hashing.
struct nvtx_string_record {
  std::string text;
  std::atomic<std::uint64_t> cached{0};  ///< (aggregator epoch << 32) | name id
};

/// Process-wide state of the NVTX tool: handles live for the process (NVTX gives no
/// lifetime guarantee for them), the sink pointer changes with start/stop.
struct nvtx_tool_state {
  std::atomic<nvtx_range_sink*> sink{nullptr};
  std::atomic<std::uint64_t> sink_epoch{0};
  /// Perf mode: times ranges with device events (nullptr in profile mode). `time_all`:
  /// every range; else stages, denoise steps and requests only.
  std::atomic<event_timer*> timer{nullptr};
  std::atomic<bool> time_all{false};
  /// Perf mode: ranges opened while true are not timed (diffscope::set_timing_paused).
  std::atomic<bool> timing_paused{false};
  /// Pauses (false -> true) since the collector started, for the results' status.
  std::atomic<std::uint64_t> timing_pauses{0};
  /// Perf mode with `time_all`: the scopes inside denoise steps are timed in one step of
  /// every `sample_steps` (1: in every step); stages, steps and requests always are.
  std::atomic<std::uint32_t> sample_steps{1};
  std::atomic<std::uint64_t> steps_seen{0};  ///< denoise steps entered since the start
  /// Profile mode: the CUPTI source's upkeep (collector_options::cupti's `automatic` launch
  /// APIs), run at each push: outside CUPTI's callbacks, on a thread between launches.
  std::atomic<void (*)()> on_push{nullptr};
  /// Sampled mode: called before a stage or request opens and after a stage closes (-1), and
  /// before a denoise step opens (its index), so the collector can switch CUPTI's tracing
  /// between launches and the range's frame knows whether it is traced. nullptr otherwise.
  std::atomic<void (*)(std::int64_t step)> on_sample_point{nullptr};
  /// How default-domain names map (nullptr: the defaults); owned by the collector.
  std::atomic<const name_rules*> rules{nullptr};
  std::mutex mutex;
  std::deque<nvtx_domain_record> domains;
  std::deque<nvtx_string_record> strings;
  std::atomic<int> initialisations{0};  ///< NVTX copies that attached to us
  void (*on_first_init)() = nullptr;    ///< set by the collector: auto-start from env
  void (*on_stage_end)(const std::string& stage) = nullptr;  ///< memory checkpoints
};

inline nvtx_tool_state& nvtx_state() {
  static nvtx_tool_state* s = new nvtx_tool_state();  // never destroyed: NVTX may call late
  return *s;
}

/// Per-thread count of ranges pushed while no aggregator was attached, per collected domain,
/// so their pops after a start() are not reported as unbalanced.
inline std::uint32_t* ghost_depths() noexcept {
  thread_local std::uint32_t depth[2] = {0, 0};
  return depth;
}

inline const name_rules& current_rules(const nvtx_tool_state& st) noexcept {
  const name_rules* r = st.rules.load(std::memory_order_acquire);
  return r != nullptr ? *r : default_name_rules();
}

/// Perf mode's default granularity: the scopes the perf dump's figures come from.
inline bool is_timed_in_perf_mode(category c) noexcept {
  return c == category::stage || c == category::denoise_step || c == category::request;
}

/// Whether the `k`-th denoise step (from 0) is one whose scopes are timed when one step in
/// `n` is: exactly one per window of `n` consecutive steps, at a place that changes from
/// window to window (a fixed hash of the window), so a loop whose steps alternate in kind
/// (cached and computed steps, guidance on and off) is not always sampled on the same kind.
inline bool step_sampled(std::uint64_t k, std::uint32_t n) noexcept {
  if (n <= 1) return true;
  std::uint64_t w = k / n + 0x9e3779b97f4a7c15ull;  // splitmix64 of the window index
  w = (w ^ (w >> 30)) * 0xbf58476d1ce4e5b9ull;
  w = (w ^ (w >> 27)) * 0x94d049bb133111ebull;
  w ^= w >> 31;
  return k % n == w % n;
}

/// This thread's latest denoise step, for perf mode's chained steps (event_timer::begin):
/// `next` is the index after the step it opened last (-1: unknown), and `armed` holds while
/// the last range it closed was that step, timed, and it has opened nothing since.
struct step_link {
  bool armed = false;
  std::int64_t next = -1;
};
inline step_link& this_thread_step_link() noexcept {
  thread_local step_link link;
  return link;
}

/// Set while this thread is inside a denoise step whose scopes are not sampled.
inline bool& in_unsampled_step() noexcept {
  thread_local bool unsampled = false;
  return unsampled;
}

inline nvtx_domain_record* nvtx_domain_of(nvtxDomainHandle_t h) noexcept {
  return reinterpret_cast<nvtx_domain_record*>(h);
}

inline std::optional<range_domain> collected_domain(nvtxDomainHandle_t h) noexcept {
  if (h == nullptr) return range_domain::default_domain;
  return nvtx_domain_of(h)->kind;
}

inline std::optional<std::int64_t> nvtx_payload(const nvtxEventAttributes_t* a) noexcept {
  switch (a->payloadType) {
    case NVTX_PAYLOAD_TYPE_INT64:
      return a->payload.llValue;
    case NVTX_PAYLOAD_TYPE_UNSIGNED_INT64:
      return static_cast<std::int64_t>(a->payload.ullValue);
    case NVTX_PAYLOAD_TYPE_INT32:
      return a->payload.iValue;
    case NVTX_PAYLOAD_TYPE_UNSIGNED_INT32:
      return a->payload.uiValue;
    default:
      return std::nullopt;
  }
}

/// Name id of a registered string in `sink`, cached on the record. `capped`: as the sink's
/// intern (a name past the cap caches "(other)", which a stage never takes).
template <class Sink>
std::uint32_t registered_name_id(Sink& sink, std::uint64_t epoch, nvtx_string_record& s,
                                 bool capped = true) {
  const std::uint64_t c = s.cached.load(std::memory_order_relaxed);
  if ((c >> 32) == (epoch & 0xffffffffu) &&
      (capped || static_cast<std::uint32_t>(c) != sink.other_name_id()))
    return static_cast<std::uint32_t>(c);
  const std::uint32_t id = sink.intern(s.text, capped);
  s.cached.store(((epoch & 0xffffffffu) << 32) | id, std::memory_order_relaxed);
  return id;
}

/// Opens a range of `dom` on `sink`: its scope, and in perf mode its timing pair. May throw
/// (allocation): the NVTX handler catches.
template <class Sink>
void push_range(Sink& sink, nvtx_tool_state& st, range_domain dom, std::string_view name,
                std::uint32_t cat_id, std::optional<std::int64_t> payload,
                nvtx_string_record* registered) {
  const std::uint64_t t = now_ns();
  const classified_range c = dom == range_domain::diffscope
                                 ? classify_diffscope_domain(name, cat_id, payload)
                                 : classify_default_domain(name, current_rules(st));
  if (void (*sample)(std::int64_t) = st.on_sample_point.load(std::memory_order_acquire)) {
    if (c.cat == category::denoise_step && c.step)
      sample(*c.step);
    else if (c.cat == category::stage || c.cat == category::request)
      sample(-1);
  }
  std::uint32_t id;
  const bool capped = !Sink::never_folded(c.cat);
  if (c.step)
    id = sink.step_name_id();
  else if (registered != nullptr && c.name.data() == name.data() && c.name.size() == name.size())
    id = registered_name_id(sink, st.sink_epoch.load(std::memory_order_relaxed), *registered,
                            capped);
  else
    id = sink.intern(c.name, capped);
  // false: inside a call folded into "(other)", its time is that call's: never timed
  const bool own_scope = sink.push(dom, id, c.cat, c.step, t, c.request_id, c.warmup);
  step_link& link = this_thread_step_link();
  const bool next_step =
      link.armed && c.cat == category::denoise_step && c.step && *c.step == link.next;
  link.armed = false;
  if (c.cat == category::denoise_step) {
    link.next = c.step && *c.step >= 0 ? *c.step + 1 : -1;
    in_unsampled_step() = !step_sampled(st.steps_seen.fetch_add(1, std::memory_order_relaxed),
                                        st.sample_steps.load(std::memory_order_relaxed));
  }
  if (void (*upkeep)() = st.on_push.load(std::memory_order_relaxed)) upkeep();
  event_timer* timer = st.timer.load(std::memory_order_acquire);  // perf and sampled modes
  if (timer == nullptr) return;
  if (own_scope && !st.timing_paused.load(std::memory_order_relaxed) &&
      (is_timed_in_perf_mode(c.cat) ||
       (st.time_all.load(std::memory_order_relaxed) && !in_unsampled_step()))) {
    // Announced like a launch of this range: its instance expects the pair's span.
    if (const std::uint32_t pair = timer->begin(t, next_step))
      sink.on_launch(pair, launch_kind::timing);
  }
  timer->handler_returning(t);
}

/// Closes the innermost range of `dom` on `sink`, unless it was pushed before collection
/// started (`ghosts`: this thread's count of those). May throw: the NVTX handler catches.
template <class Sink>
void pop_range(Sink& sink, nvtx_tool_state& st, range_domain dom, std::uint32_t& ghosts) {
  const std::uint64_t t = now_ns();
  step_link& link = this_thread_step_link();
  link.armed = false;
  if (ghosts == 0 || sink.has_open(dom)) {
    const auto p = sink.pop(dom, t);
    event_timer* timer = st.timer.load(std::memory_order_acquire);
    if (p.timed != 0 && timer != nullptr) {
      // Old pairs first (unless the resolver thread does it), then the end stamp: the
      // stamp is the handler's last CUDA call, so the time our own work takes (event
      // queries, the sink) falls inside the scope's span, not between its end and
      // whatever the program enqueues next.
      if (!timer->resolves_in_background()) timer->drain(sink, false);
      timer->end(p.timed, p.step);
      link.armed = p.step && link.next >= 0;
    }
    if (p.step) in_unsampled_step() = false;
    if (p.stage) {
      if (auto hook = st.on_stage_end) hook(sink.name_of(p.name_id));
      // Sampled mode: what follows a stage (the next stage, the VAE) is traced whole.
      if (void (*sample)(std::int64_t) = st.on_sample_point.load(std::memory_order_acquire))
        sample(-1);
    }
    if (timer != nullptr) timer->handler_returning(t);
  } else {
    --ghosts;  // pushed before collection started
  }
}

inline void nvtx_push(std::optional<range_domain> dom, std::string_view name, std::uint32_t cat_id,
                      std::optional<std::int64_t> payload, nvtx_string_record* registered) {
  if (!dom) return;
  nvtx_tool_state& st = nvtx_state();
  nvtx_range_sink* sink = st.sink.load(std::memory_order_acquire);
  if (sink == nullptr) {
    ++ghost_depths()[static_cast<int>(*dom)];
    return;
  }
  try {
    push_range(*sink, st, *dom, name, cat_id, payload, registered);
  } catch (...) {
    // Never break the host program: a failed allocation loses this range only.
  }
}

inline void nvtx_pop(std::optional<range_domain> dom) {
  if (!dom) return;
  nvtx_range_sink* sink = nvtx_state().sink.load(std::memory_order_acquire);
  std::uint32_t& ghosts = ghost_depths()[static_cast<int>(*dom)];
  if (sink == nullptr) {
    if (ghosts > 0) --ghosts;
    return;
  }
  try {
    pop_range(*sink, nvtx_state(), *dom, ghosts);
  } catch (...) {
  }
}

inline std::string_view nvtx_message(const nvtxEventAttributes_t* a, nvtx_string_record** reg,
                                     std::string& storage) {
  *reg = nullptr;
  if (a == nullptr) return {};
  switch (a->messageType) {
    case NVTX_MESSAGE_TYPE_ASCII:
      return a->message.ascii != nullptr ? std::string_view(a->message.ascii) : std::string_view();
    case NVTX_MESSAGE_TYPE_REGISTERED:
      if (a->message.registered == nullptr) return {};
      *reg = reinterpret_cast<nvtx_string_record*>(a->message.registered);
      return (*reg)->text;
    case NVTX_MESSAGE_TYPE_UNICODE:
      if (a->message.unicode != nullptr) {
        for (const wchar_t* p = a->message.unicode; *p != 0; ++p)
          storage.push_back(*p < 128 ? static_cast<char>(*p) : '?');
      }
      return storage;
    default:
      return {};
  }
}

// ---- NVTX entry points -------------------------------------------------------------------

inline int NVTX_API nvtx_range_push_a(const char* message) {
  nvtx_push(range_domain::default_domain, message != nullptr ? message : "", 0, std::nullopt,
            nullptr);
  return 0;
}

inline int NVTX_API nvtx_range_push_ex(const nvtxEventAttributes_t* a) {
  nvtx_string_record* reg = nullptr;
  std::string storage;
  const std::string_view msg = nvtx_message(a, &reg, storage);
  nvtx_push(range_domain::default_domain, msg, a ? a->category : 0,
            a ? nvtx_payload(a) : std::nullopt, nullptr);
  return 0;
}

inline int NVTX_API nvtx_range_pop() {
  nvtx_pop(range_domain::default_domain);
  return 0;
}

inline int NVTX_API nvtx_domain_range_push_ex(nvtxDomainHandle_t d,
                                              const nvtxEventAttributes_t* a) {
  const auto dom = collected_domain(d);
  if (!dom) return 0;
  if (a != nullptr && a->messageType == NVTX_MESSAGE_TYPE_REGISTERED &&
      a->message.registered != nullptr) {  // the macros' path: no string to build
    auto* reg = reinterpret_cast<nvtx_string_record*>(a->message.registered);
    nvtx_push(dom, reg->text, a->category, nvtx_payload(a), reg);
    return 0;
  }
  nvtx_string_record* reg = nullptr;
  std::string storage;
  const std::string_view msg = nvtx_message(a, &reg, storage);
  nvtx_push(dom, msg, a ? a->category : 0, a ? nvtx_payload(a) : std::nullopt, reg);
  return 0;
}

inline int NVTX_API nvtx_domain_range_pop(nvtxDomainHandle_t d) {
  nvtx_pop(collected_domain(d));
  return 0;
}

inline nvtxDomainHandle_t NVTX_API nvtx_domain_create_a(const char* name) {
  nvtx_tool_state& st = nvtx_state();
  const std::string_view n = name != nullptr ? name : "";
  std::lock_guard<std::mutex> g(st.mutex);
  for (auto& d : st.domains)
    if (d.name == n) return reinterpret_cast<nvtxDomainHandle_t>(&d);
  nvtx_domain_record rec;
  rec.name = std::string(n);
  if (n == domain_name) rec.kind = range_domain::diffscope;
  st.domains.push_back(std::move(rec));
  return reinterpret_cast<nvtxDomainHandle_t>(&st.domains.back());
}

inline void NVTX_API nvtx_domain_destroy(nvtxDomainHandle_t) {}  // handles live on

inline nvtxStringHandle_t NVTX_API nvtx_domain_register_string_a(nvtxDomainHandle_t,
                                                                 const char* s) {
  nvtx_tool_state& st = nvtx_state();
  std::lock_guard<std::mutex> g(st.mutex);
  st.strings.emplace_back();
  st.strings.back().text = s != nullptr ? s : "";
  return reinterpret_cast<nvtxStringHandle_t>(&st.strings.back());
}

/// Fills one module's callback table slot by slot (slots past the table's size are skipped:
/// an older NVTX copy simply lacks them).
inline void nvtx_fill(NvtxGetExportTableFunc_t get_export_table, NvtxCallbackModule module,
                      std::initializer_list<std::pair<unsigned, NvtxFunctionPointer>> slots) {
  const auto* callbacks =
      static_cast<const NvtxExportTableCallbacks*>(get_export_table(NVTX_ETID_CALLBACKS));
  if (callbacks == nullptr || callbacks->GetModuleFunctionTable == nullptr) return;
  NvtxFunctionTable table = nullptr;
  unsigned int size = 0;
  if (!callbacks->GetModuleFunctionTable(module, &table, &size) || table == nullptr) return;
  for (const auto& s : slots)
    if (s.first < size && table[s.first] != nullptr) *table[s.first] = s.second;
}

/// The injection entry point NVTX calls once per NVTX copy (shared object) in the process.
inline int NVTX_API nvtx_initialize_injection(NvtxGetExportTableFunc_t get_export_table) {
  auto fp = [](auto f) { return reinterpret_cast<NvtxFunctionPointer>(f); };
  nvtx_fill(get_export_table, NVTX_CB_MODULE_CORE,
            {{NVTX_CBID_CORE_RangePushEx, fp(&nvtx_range_push_ex)},
             {NVTX_CBID_CORE_RangePushA, fp(&nvtx_range_push_a)},
             {NVTX_CBID_CORE_RangePop, fp(&nvtx_range_pop)}});
  nvtx_fill(get_export_table, NVTX_CB_MODULE_CORE2,
            {{NVTX_CBID_CORE2_DomainRangePushEx, fp(&nvtx_domain_range_push_ex)},
             {NVTX_CBID_CORE2_DomainRangePop, fp(&nvtx_domain_range_pop)},
             {NVTX_CBID_CORE2_DomainCreateA, fp(&nvtx_domain_create_a)},
             {NVTX_CBID_CORE2_DomainDestroy, fp(&nvtx_domain_destroy)},
             {NVTX_CBID_CORE2_DomainRegisterStringA, fp(&nvtx_domain_register_string_a)}});
  nvtx_tool_state& st = nvtx_state();
  if (st.initialisations.fetch_add(1) == 0 && st.on_first_init != nullptr) st.on_first_init();
  return 1;
}

}  // namespace diffscope::detail
