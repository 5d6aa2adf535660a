// diffscope: the range sink, what the NVTX tool needs of the object it hands ranges to (the
// aggregator). A static interface: the tool's handlers are templates over their sink, so a
// range pays no virtual call; is_range_sink checks a type against it at compile time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <diffscope/capture/activity.hpp>
#include <diffscope/scope.hpp>

namespace diffscope::detail {

/// The collected NVTX domain a range belongs to: the default one or diffscope's own. Its
/// values are defined beside the aggregator (default_domain, diffscope).
enum class range_domain : std::uint8_t;

/// A range sink S offers, for `S& s` (named as the aggregator names them):
/// - `S::never_folded(category)`: ranges of that category never fold into "(other)";
/// - `s.step_name_id()`, `s.other_name_id()`: the name ids of every denoise step and of
///   "(other)";
/// - `s.intern(name, capped)`: a name's id (a capped name past the cap gets "(other)"'s);
/// - `s.push(domain, name_id, category, step, t_ns, request_id, warmup)`: opens a range on
///   this thread; false when it has no scope of its own (perf mode must not time it);
/// - `s.has_open(domain)`: whether a range of `domain` is open on this thread;
/// - `s.pop(domain, t_ns)`: closes the innermost one; the result's `timed` (perf mode's pair
///   id, 0: none), `step`, `stage` and `name_id` say what it was;
/// - `s.name_of(name_id)`: the name as a std::string;
/// and it is an activity_sink: perf mode's timing pairs arrive as launches and operations.
template <class S, class = void>
struct is_range_sink : std::false_type {};

template <class S>
using range_sink_popped =
    decltype(std::declval<S&>().pop(std::declval<range_domain>(), std::uint64_t{}));

template <class S>
struct is_range_sink<
    S, std::void_t<decltype(S::never_folded(category::other)),
                   decltype(std::declval<S&>().step_name_id()),
                   decltype(std::declval<S&>().other_name_id()),
                   decltype(std::declval<S&>().intern(std::string_view(), true)),
                   decltype(std::declval<S&>().push(std::declval<range_domain>(), std::uint32_t{},
                                                    category::other, std::optional<std::int64_t>(),
                                                    std::uint64_t{}, std::string_view(), false)),
                   decltype(std::declval<S&>().has_open(std::declval<range_domain>())),
                   decltype(std::declval<range_sink_popped<S>&>().timed),
                   decltype(std::declval<range_sink_popped<S>&>().step),
                   decltype(std::declval<range_sink_popped<S>&>().stage),
                   decltype(std::declval<range_sink_popped<S>&>().name_id),
                   decltype(std::string(std::declval<S&>().name_of(std::uint32_t{})))>>
    : std::conjunction<
          std::is_base_of<activity_sink, S>,
          std::is_convertible<decltype(S::never_folded(category::other)), bool>,
          std::is_convertible<decltype(std::declval<S&>().step_name_id()), std::uint32_t>,
          std::is_convertible<decltype(std::declval<S&>().other_name_id()), std::uint32_t>,
          std::is_convertible<decltype(std::declval<S&>().intern(std::string_view(), true)),
                              std::uint32_t>,
          std::is_convertible<decltype(std::declval<S&>().push(
                                  std::declval<range_domain>(), std::uint32_t{}, category::other,
                                  std::optional<std::int64_t>(), std::uint64_t{},
                                  std::string_view(), false)),
                              bool>,
          std::is_convertible<decltype(std::declval<S&>().has_open(std::declval<range_domain>())),
                              bool>> {};

template <class S>
inline constexpr bool is_range_sink_v = is_range_sink<S>::value;

}  // namespace diffscope::detail
