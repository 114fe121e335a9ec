/* Kernel function entry through fentry (BPF trampolines): the fallback when
 * the kernel has no kprobes. Entry events only. bcc attaches KFUNC_PROBE
 * programs when the module loads. */
#include "coral_common.h"

#define CORAL_FENTRY(id, fn)                                               \
	KFUNC_PROBE(fn)                                                    \
	{                                                                  \
		u64 pid_tgid = bpf_get_current_pid_tgid();                 \
		if (!coral_wanted(pid_tgid))                               \
			return 0;                                          \
		coral_count(CORAL_CNT_HITS);                               \
		s64 args[CORAL_MAX_ARGS] = {};                             \
		return coral_submit(id, pid_tgid, bpf_ktime_get_ns(), 0, args, 0, 0); \
	}
