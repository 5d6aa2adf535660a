// diffscope: CUDA graphs: the scope each graph node was captured in, and the grafting of a
// replayed node's work under the scope around the graph launch (its capture path made
// again below that scope).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <diffscope/aggregate/instances.hpp>
#include <diffscope/aggregate/names.hpp>
#include <diffscope/aggregate/scope_tree.hpp>
#include <diffscope/aggregate/window.hpp>

namespace diffscope::detail {

/// Guarded by the aggregator's mutex.
class graph_scopes {
 public:
  /// Node `node_id` was made with `scope` innermost on its thread (no_node: none).
  void captured(std::uint64_t node_id, std::uint32_t scope) { nodes_[node_id] = scope; }
  /// A copy inherits its original's scope.
  void cloned(std::uint64_t original_id, std::uint64_t clone_id) {
    auto it = nodes_.find(original_id);
    nodes_[clone_id] = it == nodes_.end() ? no_node : it->second;
  }

  // The instance of the capture-time scope path of a graph node, grafted under `launch`.
  std::uint64_t grafted_instance(std::uint64_t launch, std::uint64_t graph_node_id,
                                 scope_tree& tree, instance_pool& instances,
                                 const name_table& names, const window_state& window) {
    auto git = nodes_.find(graph_node_id);
    if (git == nodes_.end() || git->second == no_node) return launch;
    // Path from the capture-time root to the captured scope.
    std::vector<std::uint32_t> chain;
    for (std::uint32_t n = git->second; n != no_node; n = tree.node_at(n).parent)
      chain.push_back(n);
    std::uint64_t cur = launch;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      scope_instance& parent = *instances.find(cur);
      const scope_node& captured = tree.node_at(*it);
      // Under an "(other)" scope nothing has a scope of its own: its work stays there.
      if (tree.node_at(parent.node).is_other && !never_folded(captured.cat)) break;
      const std::uint32_t grafted_node = tree.find_or_create_node(
          parent.node, captured.name_id, captured.cat, captured.domain, names);
      auto found = std::find_if(parent.grafted.begin(), parent.grafted.end(),
                                [&](const auto& g) { return g.first == grafted_node; });
      if (found != parent.grafted.end()) {
        cur = found->second;
        continue;
      }
      scope_instance& in = instances.create();  // a deque: `parent` stays valid
      in.parent = cur;
      in.node = grafted_node;
      in.step = parent.step;
      in.request = parent.request;
      in.excluded = parent.excluded;
      in.closed = true;
      in.open_ended = true;  // finalised with the launch scope at stop
      parent.grafted.emplace_back(grafted_node, in.id);
      // One "call" of a grafted scope per replay that ran it, in the replay's window.
      scope_node& gn = tree.node_at(grafted_node);
      const std::uint64_t key = window.key_of(parent.request, parent.excluded);
      if (key == window.current()) {
        note_entered(gn, key, key);
        std::lock_guard<spin_lock> g(gn.host_lock);
        if (host_acc* h = window_host(gn, key)) ++h->calls;
      }
      cur = in.id;
    }
    return cur;
  }

 private:
  std::unordered_map<std::uint64_t, std::uint32_t> nodes_;  // graph node -> capture scope
};

}  // namespace diffscope::detail
