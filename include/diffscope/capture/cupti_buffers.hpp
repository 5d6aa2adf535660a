// diffscope: the CUPTI source's activity buffers: handed to CUPTI on request, read when CUPTI
// completes them (every record to the sink through ingest_activity_record), then kept for
// reuse up to a bound or freed.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cupti.h>

#include <diffscope/capture/activity.hpp>
#include <diffscope/capture/counters.hpp>
#include <diffscope/capture/cupti_options.hpp>
#include <diffscope/capture/cupti_records.hpp>

namespace diffscope::detail {

/// The running source's buffers. CUPTI's buffer callbacks carry no user pointer: the source
/// finds its pool, takes the locks (cupti_source.hpp's cupti_process_state) and calls these.
/// The free list is guarded by the source's free-buffer lock; complete() needs none of it.
class cupti_buffer_pool {
 public:
  cupti_buffer_pool() = default;
  cupti_buffer_pool(const cupti_buffer_pool&) = delete;
  cupti_buffer_pool& operator=(const cupti_buffer_pool&) = delete;
  ~cupti_buffer_pool() {
    for (auto* b : free_buffers_) std::free(b);
  }

  /// For a run with `options` (already rounded by start()). Free-buffer lock held.
  void configure(const cupti_options& options) {
    // Buffers of another size from an earlier run are not reused.
    // Nor unzeroed ones when this run promises CUPTI zeroed buffers.
    if (!free_buffers_.empty() && (free_buffer_bytes_ != options.buffer_bytes ||
                                   free_buffers_zeroed_ != options.zero_buffers)) {
      for (auto* b : free_buffers_) std::free(b);
      free_buffers_.clear();
    }
    free_buffer_bytes_ = options.buffer_bytes;
    free_buffers_zeroed_ = options.zero_buffers;
    zero_buffers_ = options.zero_buffers;
    max_free_buffers_ = options.max_free_buffers;
    free_buffers_.reserve(max_free_buffers_);  // no allocation in buffer callbacks
  }

  /// CUPTI asks for a buffer (on a launching thread whose buffer is full): a free one, else a
  /// new one; *buffer stays nullptr when none can be had. Free-buffer lock held.
  void request(std::uint8_t** buffer, std::size_t* size, cupti_counters& c) {
    c.buffers_requested.fetch_add(1, std::memory_order_relaxed);
    if (!free_buffers_.empty()) {
      *buffer = free_buffers_.back();
      free_buffers_.pop_back();
    } else {
      // calloc's fresh pages are zero without a pass over them; CUPTI wants 8-byte alignment.
      *buffer =
          static_cast<std::uint8_t*>(zero_buffers_ ? std::calloc(1, free_buffer_bytes_)
                                                   : std::aligned_alloc(8, free_buffer_bytes_));
      if (*buffer == nullptr) {
        c.buffer_alloc_failures.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      c.buffers_allocated.fetch_add(1, std::memory_order_relaxed);
    }
    *size = free_buffer_bytes_;
  }

  /// CUPTI completed `buffer` (on its own thread): every valid record to `sink`, the records
  /// CUPTI dropped counted and reported, and the buffer zeroed when this run zeroes buffers.
  /// Hand it back with recycle() afterwards.
  void complete(CUcontext ctx, std::uint32_t stream_id, std::uint8_t* buffer, std::size_t size,
                std::size_t valid, activity_sink& sink, cupti_counters& c) const {
    CUpti_Activity* record = nullptr;
    while (valid > 0 && cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
      ingest_activity_record(record, sink, c);
    }
    std::size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream_id, &dropped) == CUPTI_SUCCESS && dropped) {
      c.dropped.fetch_add(dropped, std::memory_order_relaxed);
      sink.on_dropped(dropped);
    }
    c.buffers_completed.fetch_add(1, std::memory_order_relaxed);
    // Zeroed here, on CUPTI's thread, rather than by CUPTI on the next launching thread.
    if (zero_buffers_) std::memset(buffer, 0, size);
  }

  /// A read buffer back: kept for reuse below the cap, else freed. Free-buffer lock held.
  void recycle(std::uint8_t* buffer, std::size_t size) {
    // Reserved in configure(), so push_back does not allocate while below the cap.
    if (size == free_buffer_bytes_ && free_buffers_.size() < max_free_buffers_) {
      free_buffers_.push_back(buffer);
    } else {
      std::free(buffer);
    }
  }

 private:
  std::vector<std::uint8_t*> free_buffers_;
  std::size_t free_buffer_bytes_ = 0;
  bool free_buffers_zeroed_ = false;  // the listed buffers are all zero
  bool zero_buffers_ = false;         // cupti_options::zero_buffers of this run
  std::size_t max_free_buffers_ = 0;  // cupti_options::max_free_buffers of this run
};

}  // namespace diffscope::detail
