/* Tracepoint probes. Integer fields of the tracepoint's record (from its
 * tracefs `format`) are copied into args; coral_probe/bpf_source.py appends
 * CORAL_TRACEPOINT_BEGIN(id) / CORAL_TP_FIELD(i, offset, size) / _END. */
#include "coral_common.h"

static __always_inline s64 coral_tp_field(void *ctx, u32 offset, u32 size, int is_signed)
{
	s64 v = 0;
	bpf_probe_read_kernel(&v, size & 15, (char *)ctx + offset);
	if (is_signed && size < 8) {
		int shift = 64 - size * 8;
		v = (v << shift) >> shift;
	}
	return v;
}

#define CORAL_TRACEPOINT_BEGIN(id)                                      \
	int coral_tracepoint_##id(void *ctx)                             \
	{                                                                \
		CORAL_EVENT_HEAD

#define CORAL_TP_FIELD(i, offset, size, is_signed) \
		args[i] = coral_tp_field(ctx, offset, size, is_signed);

#define CORAL_TRACEPOINT_END(id)                                                    \
		return coral_submit(id, pid_tgid, bpf_ktime_get_ns(), 0, args, 0, 0); \
	}
