// A recording NVTX tool for tests (tests/recording_injection.cpp). Compiled into a test
// executable it is that executable's static NVTX injection; built as a shared library and
// named by NVTX_INJECTION64_PATH it is a dynamic injection that every linkage unit's NVTX copy
// attaches to. It records, per thread and in call order, every range push/pop and mark that
// reaches it. This header does not include NVTX, so tests compiled with DIFFSCOPE_DISABLE or
// NVTX_DISABLE can use it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace diffscope_test {

enum class event_kind { push, pop, mark };

/// One NVTX call seen by the tool, with handles already resolved to names.
struct event {
  event_kind kind = event_kind::push;
  std::thread::id thread;
  bool default_domain = false;  ///< pushed through the domain-less API (nvtxRangePushA, ...)
  std::string domain;           ///< domain name; empty for the default domain
  const void* domain_handle = nullptr;
  std::string message;              ///< ASCII text, or the text of the registered string
  bool registered_message = false;  ///< message came as a handle from RegisterString
  std::uint32_t category = 0;
  std::string category_name;      ///< as named for this domain handle; empty if unnamed
  int payload_type = 0;           ///< nvtxPayloadType_t; 0 = none
  std::int64_t payload_i64 = 0;   ///< payload as int64 (INT64/INT32 payloads)
  std::uint64_t payload_u64 = 0;  ///< payload as uint64 (UNSIGNED_INT64/32 payloads)
  double payload_double = 0.0;    ///< payload as double (DOUBLE/FLOAT payloads)
};

/// One nvtxDomainCreateA call.
struct domain_create {
  std::string name;
  const void* handle = nullptr;
};

/// True once some linkage unit's NVTX has initialised the recording tool.
bool attached();
/// How many NVTX instances (linkage units) initialised the tool.
int init_count();

/// Forgets the events and call counts recorded so far. Domains, categories and registered
/// strings stay known (NVTX users cache their handles), so later events still resolve.
void clear();

/// Every event recorded since the last clear(), in global call order.
std::vector<event> events();
/// Events of one thread, in that thread's order.
std::vector<event> events_of(std::thread::id thread);
/// RegisterString calls since the last clear() whose text is `text`.
std::size_t register_string_calls(const std::string& text);
/// All RegisterString calls since the last clear().
std::size_t register_string_calls();
/// All nvtxDomainCreateA calls ever made (not reset by clear()).
std::vector<domain_create> domain_creates();
/// Category id -> name registered (with DomainNameCategoryA) on any handle of domain `name`.
/// Returns the names of the first handle created with that name that named any category.
std::map<std::uint32_t, std::string> category_names(const std::string& domain_name);
/// Category names of one domain handle.
std::map<std::uint32_t, std::string> category_names_of(const void* domain_handle);

/// Pushes and pops one range "diffscope_test.probe" in the default domain from the recording
/// tool's own translation unit, which always sees NVTX enabled: proves the tool is live in a
/// binary whose code under test compiled NVTX out.
void probe();

/// Checks that on every thread each pop closes the innermost open push of the same domain
/// name, and that nothing stays open. Returns an empty string if so, else what went wrong.
std::string check_balanced(const std::vector<event>& evs);

/// Path of the binary (executable or shared library) the recording tool was linked into.
std::string own_path();

}  // namespace diffscope_test
