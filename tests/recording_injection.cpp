// The recording NVTX tool (see recording_injection.hpp). Linked into a test executable it
// installs itself through NVTX's static injection hook (InitializeInjectionNvtx2_fnptr, end of
// file) and sees the NVTX calls of that executable. Built as a shared library and named by
// NVTX_INJECTION64_PATH it is a dynamic injection and every NVTX copy of the process (one per
// linkage unit) calls tool_init with its own export table on its first NVTX call.

// The tool must see NVTX even where the code under test compiles it out build-wide.
#undef NVTX_DISABLE
// This TU defines InitializeInjectionNvtx2_fnptr itself (strong), so skip NVTX's weak one;
// NVTX's loader in this TU still reads it, so declare it first (Linux: NVTX_API is empty).
#define NVTX_STATIC_INJECTION_IMPL
#include <cstdint>
extern "C" int (*InitializeInjectionNvtx2_fnptr)(const void* (*)(std::uint32_t));
#include <nvtx3/nvToolsExt.h>

#include "recording_injection.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <sstream>

// The tool defines what NVTX's opaque handles point to.
struct nvtxDomainRegistration_st {
  std::string name;
  std::map<std::uint32_t, std::string> categories;
};
struct nvtxStringRegistration_st {
  std::string text;
};

namespace diffscope_test {
namespace {

struct state {
  std::mutex mutex;
  int inits = 0;
  std::vector<event> events;
  std::map<std::string, std::size_t> registrations;  // text -> calls since clear()
  std::vector<domain_create> creates;
  std::deque<nvtxDomainRegistration_st> domains;  // deque: stable addresses = handles
  std::deque<nvtxStringRegistration_st> strings;
  nvtxDomainRegistration_st default_domain;  // categories named with nvtxNameCategoryA
};

state& the_state() {
  static state s;
  return s;
}

void fill_attributes(event& e, const nvtxDomainRegistration_st& d, const nvtxEventAttributes_t* a) {
  if (a == nullptr) return;
  switch (a->messageType) {
    case NVTX_MESSAGE_TYPE_ASCII:
      e.message = a->message.ascii != nullptr ? a->message.ascii : "";
      break;
    case NVTX_MESSAGE_TYPE_REGISTERED:
      e.registered_message = true;
      e.message = a->message.registered != nullptr ? a->message.registered->text : "";
      break;
    case NVTX_MESSAGE_TYPE_UNICODE:
      e.message = "<unicode>";
      break;
    default:
      break;
  }
  e.category = a->category;
  const auto it = d.categories.find(a->category);
  if (it != d.categories.end()) e.category_name = it->second;
  e.payload_type = a->payloadType;
  switch (a->payloadType) {
    case NVTX_PAYLOAD_TYPE_INT64:
      e.payload_i64 = a->payload.llValue;
      break;
    case NVTX_PAYLOAD_TYPE_INT32:
      e.payload_i64 = a->payload.iValue;
      break;
    case NVTX_PAYLOAD_TYPE_UNSIGNED_INT64:
      e.payload_u64 = a->payload.ullValue;
      break;
    case NVTX_PAYLOAD_TYPE_UNSIGNED_INT32:
      e.payload_u64 = a->payload.uiValue;
      break;
    case NVTX_PAYLOAD_TYPE_DOUBLE:
      e.payload_double = a->payload.dValue;
      break;
    case NVTX_PAYLOAD_TYPE_FLOAT:
      e.payload_double = a->payload.fValue;
      break;
    default:
      break;
  }
}

void record(event_kind kind, nvtxDomainHandle_t domain, const nvtxEventAttributes_t* a,
            const char* ascii = nullptr) {
  state& s = the_state();
  event e;
  e.kind = kind;
  e.thread = std::this_thread::get_id();
  e.default_domain = domain == nullptr;
  e.domain_handle = domain;
  std::lock_guard<std::mutex> lock(s.mutex);
  const nvtxDomainRegistration_st& d = domain != nullptr ? *domain : s.default_domain;
  e.domain = d.name;
  fill_attributes(e, d, a);
  if (ascii != nullptr) e.message = ascii;
  s.events.push_back(std::move(e));
}

// ---- CORE2 (domain API) ----
nvtxDomainHandle_t NVTX_API domain_create_a(const char* name) {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.domains.push_back(nvtxDomainRegistration_st{name != nullptr ? name : "", {}});
  nvtxDomainHandle_t h = &s.domains.back();
  s.creates.push_back(domain_create{h->name, h});
  return h;
}
void NVTX_API domain_name_category_a(nvtxDomainHandle_t d, std::uint32_t id, const char* name) {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  (d != nullptr ? *d : s.default_domain).categories[id] = name != nullptr ? name : "";
}
nvtxStringHandle_t NVTX_API domain_register_string_a(nvtxDomainHandle_t, const char* text) {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.strings.push_back(nvtxStringRegistration_st{text != nullptr ? text : ""});
  ++s.registrations[s.strings.back().text];
  return &s.strings.back();
}
int NVTX_API domain_range_push_ex(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) {
  record(event_kind::push, d, a);
  return 0;
}
int NVTX_API domain_range_pop(nvtxDomainHandle_t d) {
  record(event_kind::pop, d, nullptr);
  return 0;
}
void NVTX_API domain_mark_ex(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) {
  record(event_kind::mark, d, a);
}

// ---- CORE (default domain) ----
int NVTX_API range_push_a(const char* message) {
  record(event_kind::push, nullptr, nullptr, message != nullptr ? message : "");
  return 0;
}
int NVTX_API range_push_ex(const nvtxEventAttributes_t* a) {
  record(event_kind::push, nullptr, a);
  return 0;
}
int NVTX_API range_pop() {
  record(event_kind::pop, nullptr, nullptr);
  return 0;
}
void NVTX_API mark_a(const char* message) {
  record(event_kind::mark, nullptr, nullptr, message != nullptr ? message : "");
}
void NVTX_API mark_ex(const nvtxEventAttributes_t* a) {
  record(event_kind::mark, nullptr, a);
}
void NVTX_API name_category_a(std::uint32_t id, const char* name) {
  domain_name_category_a(nullptr, id, name);
}

template <class F>
void set_slot(NvtxFunctionTable table, unsigned size, unsigned id, F fn) {
  if (table != nullptr && id <= size && table[id] != nullptr)
    *table[id] = reinterpret_cast<NvtxFunctionPointer>(fn);
}

int NVTX_API tool_init(NvtxGetExportTableFunc_t get_export_table) {
  const auto* callbacks =
      static_cast<const NvtxExportTableCallbacks*>(get_export_table(NVTX_ETID_CALLBACKS));
  if (callbacks == nullptr || callbacks->GetModuleFunctionTable == nullptr) return 0;
  NvtxFunctionTable core = nullptr;
  NvtxFunctionTable core2 = nullptr;
  unsigned core_size = 0;
  unsigned core2_size = 0;
  if (callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &core, &core_size) == 0 ||
      callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE2, &core2, &core2_size) == 0) {
    return 0;
  }
  set_slot(core, core_size, NVTX_CBID_CORE_RangePushA, &range_push_a);
  set_slot(core, core_size, NVTX_CBID_CORE_RangePushEx, &range_push_ex);
  set_slot(core, core_size, NVTX_CBID_CORE_RangePop, &range_pop);
  set_slot(core, core_size, NVTX_CBID_CORE_MarkA, &mark_a);
  set_slot(core, core_size, NVTX_CBID_CORE_MarkEx, &mark_ex);
  set_slot(core, core_size, NVTX_CBID_CORE_NameCategoryA, &name_category_a);
  set_slot(core2, core2_size, NVTX_CBID_CORE2_DomainCreateA, &domain_create_a);
  set_slot(core2, core2_size, NVTX_CBID_CORE2_DomainNameCategoryA, &domain_name_category_a);
  set_slot(core2, core2_size, NVTX_CBID_CORE2_DomainRegisterStringA, &domain_register_string_a);
  set_slot(core2, core2_size, NVTX_CBID_CORE2_DomainRangePushEx, &domain_range_push_ex);
  set_slot(core2, core2_size, NVTX_CBID_CORE2_DomainRangePop, &domain_range_pop);
  set_slot(core2, core2_size, NVTX_CBID_CORE2_DomainMarkEx, &domain_mark_ex);
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  ++s.inits;
  return 1;
}

}  // namespace

bool attached() {
  return init_count() > 0;
}

int init_count() {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.inits;
}

void clear() {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.events.clear();
  s.registrations.clear();
}

std::vector<event> events() {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.events;
}

std::vector<event> events_of(std::thread::id thread) {
  std::vector<event> out;
  for (event& e : events())
    if (e.thread == thread) out.push_back(std::move(e));
  return out;
}

std::size_t register_string_calls(const std::string& text) {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  const auto it = s.registrations.find(text);
  return it == s.registrations.end() ? 0 : it->second;
}

std::size_t register_string_calls() {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::size_t n = 0;
  for (const auto& r : s.registrations) n += r.second;
  return n;
}

std::vector<domain_create> domain_creates() {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.creates;
}

std::map<std::uint32_t, std::string> category_names(const std::string& domain_name) {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  for (const auto& d : s.domains)
    if (d.name == domain_name && !d.categories.empty()) return d.categories;
  return {};
}

std::map<std::uint32_t, std::string> category_names_of(const void* domain_handle) {
  state& s = the_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (domain_handle == nullptr) return s.default_domain.categories;
  return static_cast<const nvtxDomainRegistration_st*>(domain_handle)->categories;
}

void probe() {
  nvtxRangePushA("diffscope_test.probe");
  nvtxRangePop();
}

std::string check_balanced(const std::vector<event>& evs) {
  std::map<std::thread::id, std::vector<const event*>> open;
  std::ostringstream err;
  for (const event& e : evs) {
    std::vector<const event*>& stack = open[e.thread];
    if (e.kind == event_kind::push) {
      stack.push_back(&e);
    } else if (e.kind == event_kind::pop) {
      // NVTX push/pop stacks are per thread and per domain: find this domain's innermost.
      auto it = stack.rbegin();
      while (it != stack.rend() &&
             ((*it)->default_domain != e.default_domain || (*it)->domain != e.domain)) {
        ++it;
      }
      if (it == stack.rend()) {
        err << "pop of domain '" << e.domain << "' with nothing open; ";
      } else {
        stack.erase(std::next(it).base());
      }
    }
  }
  for (const auto& t : open)
    for (const event* e : t.second) err << "'" << e->message << "' never popped; ";
  return err.str();
}

std::string own_path() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&tool_init), &info) == 0 || info.dli_fname == nullptr) {
    return {};
  }
  char* resolved = realpath(info.dli_fname, nullptr);
  std::string path = resolved != nullptr ? resolved : info.dli_fname;
  std::free(resolved);
  return path;
}

}  // namespace diffscope_test

// Static injection. Strong definition: overrides the weak null pointer of the NVTX copy in
// the linkage unit this file is linked into (NVTX_SUPPORT_STATIC_INJECTION_LIBRARY). NVTX
// makes that weak pointer hidden, so NVTX copies in other shared objects never see it; and
// NVTX_INJECTION64_PATH, if set, wins over it.
NvtxInitializeInjectionNvtxFunc_t InitializeInjectionNvtx2_fnptr = &diffscope_test::tool_init;

// Dynamic injection: the entry point NVTX looks up when NVTX_INJECTION64_PATH names the shared
// library built from this file. Every NVTX copy of the process then attaches to it.
extern "C" __attribute__((visibility("default"))) int InitializeInjectionNvtx2(
    NvtxGetExportTableFunc_t get_export_table) {
  return diffscope_test::tool_init(get_export_table);
}
