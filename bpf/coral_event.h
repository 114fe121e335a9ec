/* The one event layout shared by every coral BPF program and the Rust core
 * (native/src/event.rs mirrors it; a Rust test compiles this header and pins
 * every offset). Change it here first. */
#ifndef CORAL_EVENT_H
#define CORAL_EVENT_H

#define CORAL_MAX_ARGS 6
#define CORAL_COMM_LEN 16

/* coral_event.flags */
#define CORAL_EV_HAS_RETURN (1u << 0) /* duration_ns and ret are valid */
/* With HAS_RETURN: DWARF says the function returns nothing, so ret (left 0)
 * would only be what the return register happened to hold. */
#define CORAL_EV_NO_VALUE (1u << 1)

/* Slots of the per-CPU `counters` array every program keeps. Every hit ends
 * in exactly one of: submitted, lost, filtered, too_deep, unpaired, or still
 * open (opened - closed) when the session stops; coral_probe/accounting.py
 * checks that sum. */
#define CORAL_CNT_HITS 0      /* probe fired for a wanted process */
#define CORAL_CNT_SUBMITTED 1 /* records committed to the ring buffer */
#define CORAL_CNT_LOST 2      /* ring buffer full, or no per-thread storage */
#define CORAL_CNT_FILTERED 3  /* dropped on purpose: --sample, --min-duration */
#define CORAL_CNT_UNPAIRED 4  /* an open call unwound without its return (longjmp, exception) */
#define CORAL_CNT_TOO_DEEP 5  /* entry past the per-thread open-call limit */
#define CORAL_CNT_OPENED 6    /* entries recorded, waiting for their return */
#define CORAL_CNT_CLOSED 7    /* recorded entries paired with their return or unwound */
#define CORAL_CNT_BEFORE_ATTACH 8 /* returns of calls that began before the probes were attached */
#define CORAL_CNT_MAX 9

struct coral_event {
	__u64 ts_ns;       /* bpf_ktime_get_ns() at entry (CLOCK_MONOTONIC) */
	__u64 duration_ns; /* return - entry, with CORAL_EV_HAS_RETURN */
	__u32 tgid;
	__u32 tid;
	__u32 probe_id;    /* index into the session's probe table */
	__u32 flags;
	__s64 args[CORAL_MAX_ARGS];
	__s64 ret;
	char comm[CORAL_COMM_LEN];
};

#endif /* CORAL_EVENT_H */
