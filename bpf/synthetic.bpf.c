/* Synthetic in-kernel producer for benchmarks: every getppid() of the bench
 * process emits a burst of CORAL_BURST coral_events through a bounded loop,
 * measuring the pipeline without the uprobe trap's cost. */
#include "coral_common.h"

#ifndef CORAL_BURST
#define CORAL_BURST 1024
#endif

TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!coral_wanted(pid_tgid))
		return 0;
	u64 ts = bpf_ktime_get_ns();
	s64 argv[CORAL_MAX_ARGS] = {};
	for (int i = 0; i < CORAL_BURST; i++) {
		coral_count(CORAL_CNT_HITS);
		argv[0] = i;
		coral_submit(0, pid_tgid, ts + i, i, argv, i, CORAL_EV_HAS_RETURN);
	}
	return 0;
}
