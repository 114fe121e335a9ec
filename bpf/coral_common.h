/* Helpers shared by coral's bcc programs: the ring buffer, loss counters and
 * the process filter. Configured by -D flags from coral_probe/bpf_source.py. */
#ifndef CORAL_COMMON_H
#define CORAL_COMMON_H

#include "coral_event.h"

#ifndef CORAL_RINGBUF_PAGES
#define CORAL_RINGBUF_PAGES 1024
#endif
#ifndef CORAL_FILTER_TGID
#define CORAL_FILTER_TGID 0 /* 0: every process */
#endif

BPF_RINGBUF_OUTPUT(events, CORAL_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(counters, u64, CORAL_CNT_MAX);

static __always_inline void coral_count(int slot)
{
	u64 *c = counters.lookup(&slot);
	if (c)
		(*c)++;
}

static __always_inline int coral_wanted(u64 pid_tgid)
{
#if CORAL_FILTER_TGID
	/* Also filtered in the kernel, not only by the perf event's pid:
	 * a shared library's uprobe fires for every process mapping it. */
	if ((pid_tgid >> 32) != CORAL_FILTER_TGID)
		return 0;
#endif
	return 1;
}

/* Reserve, fill, submit; a failed reserve is counted, never silent. */
static __always_inline int coral_submit(u32 probe_id, u64 pid_tgid, u64 ts,
					u64 duration, const s64 *args, s64 ret,
					u32 flags)
{
	struct coral_event *e = events.ringbuf_reserve(sizeof(*e));
	if (!e) {
		coral_count(CORAL_CNT_LOST);
		return 0;
	}
	e->ts_ns = ts;
	e->duration_ns = duration;
	e->tgid = pid_tgid >> 32;
	e->tid = (u32)pid_tgid;
	e->probe_id = probe_id;
	e->flags = flags;
	__builtin_memcpy(e->args, args, sizeof(e->args));
	e->ret = ret;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	events.ringbuf_submit(e, 0);
	coral_count(CORAL_CNT_SUBMITTED);
	return 0;
}

#endif /* CORAL_COMMON_H */
