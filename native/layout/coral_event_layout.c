/* Compiled by build.rs with the host C compiler so a Rust test can compare
 * the real C layout of bpf/coral_event.h with native/src/event.rs. */
#include <stddef.h>
#include <linux/types.h>
#include "../../bpf/coral_event.h"

const unsigned long coral_event_layout[] = {
	sizeof(struct coral_event),
	offsetof(struct coral_event, ts_ns),
	offsetof(struct coral_event, duration_ns),
	offsetof(struct coral_event, tgid),
	offsetof(struct coral_event, tid),
	offsetof(struct coral_event, probe_id),
	offsetof(struct coral_event, flags),
	offsetof(struct coral_event, args),
	offsetof(struct coral_event, ret),
	offsetof(struct coral_event, comm),
	CORAL_MAX_ARGS,
	CORAL_COMM_LEN,
	CORAL_EV_HAS_RETURN,
	CORAL_EV_NO_VALUE,
	CORAL_CNT_HITS,
	CORAL_CNT_SUBMITTED,
	CORAL_CNT_LOST,
	CORAL_CNT_FILTERED,
	CORAL_CNT_UNPAIRED,
	CORAL_CNT_TOO_DEEP,
	CORAL_CNT_OPENED,
	CORAL_CNT_CLOSED,
	CORAL_CNT_BEFORE_ATTACH,
	CORAL_CNT_MAX,
};
