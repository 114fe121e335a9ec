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

/* A wakeup per event (the default) costs the probed thread an irq_work and
 * the consumer a context switch per record: 2.4x the no-op probe's cost in
 * benches/test_probe_cost.py against 1.5x without. The consumer polls every
 * millisecond instead, and each CPU wakes it early every time it has added
 * an eighth of the ring. (bpf_ringbuf_query would say what is pending, but
 * bcc does not rewrite a map reference passed to a raw helper.) */
#define CORAL_RECORD_BYTES 112 /* sizeof(struct coral_event) + ring header */
#define CORAL_WAKEUP_EVERY ((CORAL_RINGBUF_PAGES * 4096 / 8 / CORAL_RECORD_BYTES) ?: 1)
BPF_PERCPU_ARRAY(counters, u64, CORAL_CNT_MAX);

static __always_inline u64 coral_count(int slot)
{
	u64 *c = counters.lookup(&slot);
	if (!c)
		return 0;
	return ++(*c);
}

/* control[0] is set by coral the instant a session stops (Ctrl-C, SIGTERM,
 * --duration): from then on the programs count and send nothing, so the
 * session ends at that instant although detaching takes ~0.1 s per uprobe
 * here, and the counters read after the detach describe that instant. */
BPF_ARRAY(control, u32, 1);

static __always_inline int coral_stopped(void)
{
	int zero = 0;
	u32 *stopped = control.lookup(&zero);
	return stopped && *stopped;
}

static __always_inline int coral_wanted(u64 pid_tgid)
{
#if CORAL_FILTER_TGID
	/* Also filtered in the kernel, not only by the perf event's pid:
	 * a shared library's uprobe fires for every process mapping it. The
	 * constant compare first: other processes never reach the map lookup. */
	if ((pid_tgid >> 32) != CORAL_FILTER_TGID)
		return 0;
#endif
	return !coral_stopped();
}

/* The head of a program that records one event per hit (tracepoint.bpf.c,
 * usdt.bpf.c): the process filter, the hit counted, then args[] to fill. */
#define CORAL_EVENT_HEAD                                                  \
	u64 pid_tgid = bpf_get_current_pid_tgid();                        \
	if (!coral_wanted(pid_tgid))                                      \
		return 0;                                                 \
	coral_count(CORAL_CNT_HITS);                                      \
	s64 args[CORAL_MAX_ARGS] = {};

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
	u64 submitted = coral_count(CORAL_CNT_SUBMITTED);
	events.ringbuf_submit(e, submitted % CORAL_WAKEUP_EVERY ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP);
	return 0;
}

#endif /* CORAL_COMMON_H */
