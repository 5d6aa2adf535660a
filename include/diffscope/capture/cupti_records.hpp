// diffscope: CUPTI activity records (kernels, copies, sets) converted into gpu_op for an
// activity_sink, with the record counters kept on the way.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include <cupti.h>

#include <diffscope/capture/activity.hpp>
#include <diffscope/capture/counters.hpp>

namespace diffscope::detail {

/// "memcpy HtoD" etc. for CUpti_ActivityMemcpyKind; string literals, valid forever.
inline std::string_view memcpy_kind_name(std::uint32_t copy_kind) noexcept {
  switch (copy_kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD:
      return "memcpy HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH:
      return "memcpy DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOA:
      return "memcpy HtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOH:
      return "memcpy AtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOA:
      return "memcpy AtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOD:
      return "memcpy AtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOA:
      return "memcpy DtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD:
      return "memcpy DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH:
      return "memcpy HtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP:
      return "memcpy PtoP";
    default:
      return "memcpy";
  }
}

/// The fields every CUPTI operation record carries, into `op`.
template <typename Record>
inline void copy_op_fields(const Record* rec, gpu_op& op) noexcept {
  op.correlation_id = rec->correlationId;
  op.graph_node_id = rec->graphNodeId;
  op.start_ns = rec->start;
  op.end_ns = rec->end;
  op.device_id = rec->deviceId;
  op.context_id = rec->contextId;
  op.stream_id = rec->streamId;
}

/// Converts one CUPTI activity record into a gpu_op and hands it to the sink. The buffer
/// callback calls exactly this for every record, so tests that build records by hand run
/// the same code as CUPTI's buffers. Records with a zero or inverted start/end (forced
/// flush of unfinished work) are counted in bad_timestamps and not passed on: a GPU time
/// that was not measured is absent, never invented.
inline void ingest_activity_record(const CUpti_Activity* record, activity_sink& sink,
                                   cupti_counters& counters) noexcept {
  constexpr auto r = std::memory_order_relaxed;
  counters.records.fetch_add(1, r);
  gpu_op op;
  switch (record->kind) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
      op.kind = op_kind::kernel;
      copy_op_fields(k, op);
      op.name = k->name ? std::string_view(k->name) : std::string_view("<unnamed kernel>");
      counters.kernels.fetch_add(1, r);
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
      op.kind = op_kind::memcpy;
      copy_op_fields(m, op);
      op.bytes = m->bytes;
      op.name = memcpy_kind_name(m->copyKind);
      counters.memcpys.fetch_add(1, r);
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY2: {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpyPtoP4*>(record);
      op.kind = op_kind::memcpy;
      copy_op_fields(m, op);
      op.bytes = m->bytes;
      op.name = memcpy_kind_name(CUPTI_ACTIVITY_MEMCPY_KIND_PTOP);
      counters.memcpys.fetch_add(1, r);
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
      op.kind = op_kind::memset;
      copy_op_fields(m, op);
      op.bytes = m->bytes;
      op.name = "memset";
      counters.memsets.fetch_add(1, r);
      break;
    }
    default:
      counters.other_records.fetch_add(1, r);
      return;
  }
  // Counted here and still handed on: the sink counts zero and inverted timestamps apart,
  // reports them as faults and keeps them out of every timing.
  if (op.start_ns == 0 || op.end_ns == 0 || op.end_ns < op.start_ns)
    counters.bad_timestamps.fetch_add(1, r);
  sink.on_gpu_op(op);
}

}  // namespace diffscope::detail
