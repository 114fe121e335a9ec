/* Function probes: uprobe/uretprobe, Go RET-instruction probes, kprobes.
 *
 * Entry stores (timestamp, args) keyed by (thread, call frame, probe) and
 * the return pairs with it, so recursion and nested probed functions pair
 * correctly; latency filtering happens here, before the ring buffer. The
 * counters (bpf/coral_event.h) account for every hit: a recorded entry is
 * "opened" and later "closed" by its return or by unwinding past it.
 * coral_probe/bpf_source.py appends CORAL_MULTI_PROBES: one program for all
 * entries and one for all returns, attached through uprobe_multi links whose
 * cookie says which function fired (coral_probe/uprobe_links.py); or, before
 * Linux 6.6, one CORAL_PROBE(id) line per function (CORAL_PROBE_VOID(id) for
 * one known to return nothing). */
#include <uapi/linux/ptrace.h>
#include "coral_common.h"

#ifndef CORAL_WITH_RETURN
#define CORAL_WITH_RETURN 1
#endif
#ifndef CORAL_MIN_DURATION_NS
#define CORAL_MIN_DURATION_NS 0
#endif
#ifndef CORAL_SAMPLE
#define CORAL_SAMPLE 1
#endif
#ifndef CORAL_GO_ABI
#define CORAL_GO_ABI 0
#endif

/* x86-64: a uretprobe fires after `ret` popped the return address (sp moved
 * by 8); a Go return probe sits on the RET instruction itself (sp unchanged). */
#if CORAL_GO_ABI
#define CORAL_RET_SP_DELTA 0
#else
#define CORAL_RET_SP_DELTA 8
#endif

struct coral_entry_key {
	u32 thread;    /* tid; for Go the tgid (goroutines move between threads) */
	u32 probe_id;
	u64 frame;     /* where the frame is: the stack pointer (see coral_frame) */
	u64 goroutine; /* Go: the g pointer; 0 otherwise */
};

struct coral_entry {
	u64 ts;
	s64 args[CORAL_MAX_ARGS];
};

#if CORAL_GO_ABI
/* LRU: entries whose return never comes (a goroutine killed mid-call) age out. */
BPF_TABLE("lru_hash", struct coral_entry_key, struct coral_entry, entries, 65536);
#else
/* C/C++: each thread keeps a small stack of open calls in task-local storage,
 * several times cheaper per call than hashing (measured: bpf_stats run time),
 * and freed with the thread. */
#define CORAL_MAX_DEPTH 16
struct coral_open_call {
	u64 frame;
	u32 probe_id;
	u32 pad;
	struct coral_entry entry;
};
struct coral_call_stack {
	u32 depth;
	u32 too_deep; /* entries not recorded (past CORAL_MAX_DEPTH) whose return is still to come */
	struct coral_open_call calls[CORAL_MAX_DEPTH];
};
BPF_TASK_STORAGE(call_stacks, struct coral_call_stack);
#endif
BPF_ARRAY(sample_counter, u64, 1);

static __always_inline void coral_read_args(struct pt_regs *ctx, s64 *args)
{
#if CORAL_GO_ABI
	/* Go's register ABI (ABIInternal): RAX, RBX, RCX, RDI, RSI, R8, ... */
	args[0] = ctx->ax;
	args[1] = ctx->bx;
	args[2] = ctx->cx;
	args[3] = ctx->di;
	args[4] = ctx->si;
	args[5] = ctx->r8;
#else
	args[0] = PT_REGS_PARM1(ctx);
	args[1] = PT_REGS_PARM2(ctx);
	args[2] = PT_REGS_PARM3(ctx);
	args[3] = PT_REGS_PARM4(ctx);
	args[4] = PT_REGS_PARM5(ctx);
	args[5] = PT_REGS_PARM6(ctx);
#endif
}

/* Exactly 1 in N across all CPUs: a shared counter, not a random draw. */
static __always_inline int coral_sampled(void)
{
#if CORAL_SAMPLE > 1
	int zero = 0;
	u64 *c = sample_counter.lookup(&zero);
	if (!c)
		return 0;
	return __sync_fetch_and_add(c, 1) % CORAL_SAMPLE == 0;
#else
	return 1;
#endif
}

static __always_inline u32 coral_thread(u64 pid_tgid)
{
	return CORAL_GO_ABI ? (u32)(pid_tgid >> 32) : (u32)pid_tgid;
}

/* Identifies a call frame at entry and again at its return. For Go, the
 * runtime may copy a goroutine's stack mid-call (stack growth), moving sp;
 * the distance from the stack's top (g.stack.hi, R14 holds g in Go's
 * register ABI) moves with it and is what pairs the two. */
static __always_inline void coral_frame(struct pt_regs *ctx, struct coral_entry_key *key, u64 sp)
{
#if CORAL_GO_ABI
	u64 g = ctx->r14, stack_hi = 0;
	bpf_probe_read_user(&stack_hi, sizeof(stack_hi), (void *)(g + 8));
	key->goroutine = g;
	key->frame = stack_hi - sp;
#else
	key->goroutine = 0;
	key->frame = sp;
#endif
}

#if CORAL_WITH_RETURN && CORAL_GO_ABI
#define CORAL_EEXIST 17
/* Go: one entry per (goroutine, frame, probe) in the LRU table, inserted
 * only if absent, in one map operation. The key is already there when the
 * same call is entered again: its prologue found the stack too small (or a
 * preemption request), runtime.morestack ran and restarted the function from
 * its first instruction, and the frame's distance from the stack top is
 * unchanged. That is not a new hit, and the latency runs from the first
 * entry. A sampled-out call keeps an entry too, marked ts = 0, so that its
 * re-entries and its return are recognised. (A goroutine that panicked
 * mid-call leaves its entry behind: in flight at the stop, and a later call
 * at the same depth pairs with it.) */
static __always_inline int coral_go_entry(struct pt_regs *ctx, u32 probe_id, u64 pid_tgid)
{
	struct coral_entry_key key = { .thread = coral_thread(pid_tgid), .probe_id = probe_id };
	coral_frame(ctx, &key, PT_REGS_SP(ctx));
	struct coral_entry entry = { .ts = bpf_ktime_get_ns() };
	coral_read_args(ctx, entry.args);
	long err = entries.insert(&key, &entry);
	if (err == -CORAL_EEXIST)
		return 0;
	coral_count(CORAL_CNT_HITS);
	if (err) {
		coral_count(CORAL_CNT_LOST);
		return 0;
	}
	if (!coral_sampled()) {
		coral_count(CORAL_CNT_FILTERED);
		struct coral_entry *kept = entries.lookup(&key);
		if (kept)
			kept->ts = 0;
		return 0;
	}
	coral_count(CORAL_CNT_OPENED);
	return 0;
}
#endif

static __always_inline int coral_on_entry(struct pt_regs *ctx, u32 probe_id)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!coral_wanted(pid_tgid))
		return 0;
#if CORAL_WITH_RETURN && CORAL_GO_ABI
	return coral_go_entry(ctx, probe_id, pid_tgid);
#else
	coral_count(CORAL_CNT_HITS);
	if (!coral_sampled()) {
		coral_count(CORAL_CNT_FILTERED);
		return 0;
	}
#if CORAL_WITH_RETURN
	struct coral_call_stack *stack = call_stacks.task_storage_get(
		bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!stack) {
		coral_count(CORAL_CNT_LOST);
		return 0;
	}
	u32 depth = stack->depth;
	if (depth >= CORAL_MAX_DEPTH) {
		stack->too_deep++;
		coral_count(CORAL_CNT_TOO_DEEP);
		return 0;
	}
	struct coral_open_call *call = &stack->calls[depth & (CORAL_MAX_DEPTH - 1)];
	call->frame = PT_REGS_SP(ctx);
	call->probe_id = probe_id;
	call->entry.ts = bpf_ktime_get_ns();
	coral_read_args(ctx, call->entry.args);
	stack->depth = depth + 1;
	coral_count(CORAL_CNT_OPENED);
	return 0;
#else
	s64 args[CORAL_MAX_ARGS];
	coral_read_args(ctx, args);
	return coral_submit(probe_id, pid_tgid, bpf_ktime_get_ns(), 0, args, 0, 0);
#endif
#endif
}

/* no_value: a constant per probe (CORAL_PROBE_VOID), so each program keeps
 * one path and a void function's stale return register never leaves here. */
static __always_inline void coral_finish(u32 probe_id, u64 pid_tgid, struct coral_entry *entry, s64 ret,
					 int no_value)
{
	u64 duration = bpf_ktime_get_ns() - entry->ts;
	if (duration < CORAL_MIN_DURATION_NS)
		coral_count(CORAL_CNT_FILTERED);
	else if (no_value)
		coral_submit(probe_id, pid_tgid, entry->ts, duration, entry->args, 0,
			     CORAL_EV_HAS_RETURN | CORAL_EV_NO_VALUE);
	else
		coral_submit(probe_id, pid_tgid, entry->ts, duration, entry->args, ret, CORAL_EV_HAS_RETURN);
}

/* A return whose entry was never recorded: its call began before the entry
 * probe was attached. Go return probes sit on RET instructions and see every
 * such call; a uretprobe sees only those entered between its own attach and
 * the entry probe's (attached in that order, so that no call is recorded
 * without its return). For C with --sample the entry may have been sampled
 * out instead (Go keeps sampled-out entries), so nothing is counted. */
static __always_inline void coral_not_opened(void)
{
	if (CORAL_SAMPLE <= 1 || CORAL_GO_ABI)
		coral_count(CORAL_CNT_BEFORE_ATTACH);
}

static __always_inline int coral_on_return(struct pt_regs *ctx, u32 probe_id, int no_value)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!coral_wanted(pid_tgid))
		return 0;
	u64 entry_sp = PT_REGS_SP(ctx) - CORAL_RET_SP_DELTA;
#if CORAL_GO_ABI
	struct coral_entry_key key = { .thread = coral_thread(pid_tgid), .probe_id = probe_id };
	coral_frame(ctx, &key, entry_sp);
	struct coral_entry *entry = entries.lookup(&key);
	if (!entry) {
		coral_not_opened();
		return 0;
	}
	if (entry->ts) { /* 0: sampled out, counted as filtered at its entry */
		coral_count(CORAL_CNT_CLOSED);
		coral_finish(probe_id, pid_tgid, entry, PT_REGS_RC(ctx), no_value);
	}
	entries.delete(&key);
#else
	struct coral_call_stack *stack = call_stacks.task_storage_get(bpf_get_current_task_btf(), 0, 0);
	if (!stack) {
		coral_not_opened();
		return 0;
	}
	/* Stacks grow down: open calls deeper than this frame never returned
	 * (longjmp, exceptions) and are discarded; a shallower top means this
	 * call's entry was not recorded (sampled out, or attached mid-call). */
	for (int i = 0; i < CORAL_MAX_DEPTH; i++) {
		u32 depth = stack->depth;
		if (depth == 0)
			break;
		struct coral_open_call *call = &stack->calls[(depth - 1) & (CORAL_MAX_DEPTH - 1)];
		if (call->frame > entry_sp)
			break;
		stack->depth = depth - 1;
		coral_count(CORAL_CNT_CLOSED);
		if (call->frame == entry_sp && call->probe_id == probe_id) {
			coral_finish(probe_id, pid_tgid, &call->entry, PT_REGS_RC(ctx), no_value);
			return 0;
		}
		coral_count(CORAL_CNT_UNPAIRED);
	}
	if (stack->too_deep) {
		stack->too_deep--; /* the return of an entry counted as too deep */
		return 0;
	}
	coral_not_opened();
#endif
	return 0;
}

#define CORAL_PROBE_WITH(id, no_value)                                    \
	int coral_entry_##id(struct pt_regs *ctx) { return coral_on_entry(ctx, id); } \
	int coral_return_##id(struct pt_regs *ctx) { return coral_on_return(ctx, id, no_value); }
#define CORAL_PROBE(id) CORAL_PROBE_WITH(id, 0)
/* A function DWARF says returns nothing: its events carry CORAL_EV_NO_VALUE. */
#define CORAL_PROBE_VOID(id) CORAL_PROBE_WITH(id, 1)

/* A uprobe_multi cookie: the probe id, and whether DWARF says the function
 * returns nothing (coral_probe/plan.py builds them). */
#define CORAL_COOKIE_NO_VALUE (1ull << 32)
#define CORAL_MULTI_PROBES                                                \
	int coral_entry(struct pt_regs *ctx)                              \
	{                                                                 \
		return coral_on_entry(ctx, (u32)bpf_get_attach_cookie(ctx)); \
	}                                                                 \
	int coral_return(struct pt_regs *ctx)                             \
	{                                                                 \
		u64 cookie = bpf_get_attach_cookie(ctx);                  \
		return coral_on_return(ctx, (u32)cookie, !!(cookie & CORAL_COOKIE_NO_VALUE)); \
	}
