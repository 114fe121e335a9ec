/* prologues N [SLEEP_US [ONLY]]: functions whose first instructions are exact
 * (top-level asm: the compiler cannot reorder or pad a prologue written here),
 * to test where coral places a uprobe (native/src/symbols.rs attach_points)
 * and to measure what a uprobe hit costs on each first instruction.
 *
 * Call i (1..N) calls every pro_* function with (i, 2*i), in the order of
 * `calls` below; each returns prologue_body(a, b) = 3*a + b, which sleeps
 * SLEEP_US first: 5*i for all but pro_endbr_arg, which doubles its first
 * argument before its `push` (8*i). pro_tailer is entered by call and leaves
 * by a tail jump into pro_tail: one call, two probed functions, one return.
 * With ONLY, just that function (pro_* or first_*) is called N times.
 * PROLOGUES_TIME=1: "elapsed_ns NS" on stderr for the calls.
 * PROLOGUES_WAIT=1: "ready" on stdout, then wait for a line on stdin.
 * Exit code: N % 7. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "wait_for_go.h"

static long sleep_for_us;

/* Not named pro_*: `coral probe attach 'pro_*'` probes only the prologues. */
__attribute__((noinline, used)) long prologue_body(long a, long b)
{
	if (sleep_for_us > 0) {
		struct timespec ts = { sleep_for_us / 1000000, (sleep_for_us % 1000000) * 1000 };
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	return 3 * a + b;
}

#define FUNCTION(name) ".globl " #name "\n.type " #name ", @function\n" #name ":\n"
#define END(name) ".size " #name ", .-" #name "\n"

__asm__(
	".text\n"
	/* The CET prologue of distro binaries: endbr64 (single-stepped) then an
	 * emulated push. Entry and uretprobe both belong on the push. */
	".p2align 4\n" FUNCTION(pro_endbr_push)
	"endbr64\n"
	"push %rbp\n"
	"mov %rsp, %rbp\n"
	"call prologue_body\n"
	"pop %rbp\n"
	"ret\n" END(pro_endbr_push)

	/* endbr64, then an instruction that writes the first argument: the probe
	 * must read rdi before it, so it stays on the endbr64. */
	".p2align 4\n" FUNCTION(pro_endbr_arg)
	"endbr64\n"
	"lea (%rdi,%rdi), %rdi\n"
	"push %rbp\n"
	"mov %rsp, %rbp\n"
	"call prologue_body\n"
	"pop %rbp\n"
	"ret\n" END(pro_endbr_arg)

	/* sub rsp first: a uretprobe must see the return address at [rsp], so
	 * with a return probe it stays; entry-only it may go to the call. */
	".p2align 4\n" FUNCTION(pro_sub)
	"sub $8, %rsp\n"
	"call prologue_body\n"
	"add $8, %rsp\n"
	"ret\n" END(pro_sub)

	/* Both single-stepped, then the call: the same, one more to cross. */
	".p2align 4\n" FUNCTION(pro_endbr_sub)
	"endbr64\n"
	"sub $8, %rsp\n"
	"call prologue_body\n"
	"add $8, %rsp\n"
	"ret\n" END(pro_endbr_sub)

	/* mov writes rax, no argument register of the C ABI: crossed. */
	".p2align 4\n" FUNCTION(pro_mov)
	"mov %rdi, %rax\n"
	"push %rbp\n"
	"mov %rsp, %rbp\n"
	"call prologue_body\n"
	"pop %rbp\n"
	"ret\n" END(pro_mov)

	/* Already emulated: stays. */
	".p2align 4\n" FUNCTION(pro_push)
	"push %rbp\n"
	"mov %rsp, %rbp\n"
	"call prologue_body\n"
	"pop %rbp\n"
	"ret\n" END(pro_push)

	/* A loop back onto the first emulated instruction: a probe there would
	 * fire on every round, so it stays on the endbr64. */
	".p2align 4\n" FUNCTION(pro_loop)
	"endbr64\n"
	"mov $3, %r11d\n"
	"1: push %rbp\n"
	"pop %rbp\n"
	"dec %r11d\n"
	"jnz 1b\n"
	"push %rbp\n"
	"mov %rsp, %rbp\n"
	"call prologue_body\n"
	"pop %rbp\n"
	"ret\n" END(pro_loop)

	/* Leaves by a tail jump: pro_tail runs on pro_tailer's frame and its
	 * `ret` returns for both. */
	".p2align 4\n" FUNCTION(pro_tailer)
	"endbr64\n"
	"jmp pro_tail\n" END(pro_tailer)

	".p2align 4\n" FUNCTION(pro_tail)
	"endbr64\n"
	"push %rbp\n"
	"mov %rsp, %rbp\n"
	"call prologue_body\n"
	"pop %rbp\n"
	"ret\n" END(pro_tail)

	/* Entered past its endbr64 from another function, as hand-written
	 * assembly does (glibc's mempcpy jumps into memmove): a probe moved onto
	 * the push would count enter_past's calls as pro_entered's. */
	".p2align 4\n" FUNCTION(pro_entered)
	"endbr64\n"
	"push %rbp\n"
	"mov %rsp, %rbp\n"
	"call prologue_body\n"
	"pop %rbp\n"
	"ret\n" END(pro_entered)
	".p2align 4\n" FUNCTION(enter_past)
	"endbr64\n"
	"jmp pro_entered + 4\n" END(enter_past)

	/* One first instruction each, for the cost of a uprobe hit on it
	 * (benches/test_attach_point_cost.py). Each returns a + b. */
	".p2align 4\n" FUNCTION(first_push)
	"push %rbp\n" "pop %rbp\n" "lea (%rdi,%rsi), %rax\n" "ret\n" END(first_push)
	".p2align 4\n" FUNCTION(first_nop)
	"nop\n" "lea (%rdi,%rsi), %rax\n" "ret\n" END(first_nop)
	".p2align 4\n" FUNCTION(first_nop5)
	".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n" "lea (%rdi,%rsi), %rax\n" "ret\n" END(first_nop5)
	".p2align 4\n" FUNCTION(first_jmp)
	".byte 0xeb, 0x00\n" "lea (%rdi,%rsi), %rax\n" "ret\n" END(first_jmp)
	".p2align 4\n" FUNCTION(first_endbr)
	"endbr64\n" "lea (%rdi,%rsi), %rax\n" "ret\n" END(first_endbr)
	".p2align 4\n" FUNCTION(first_sub)
	"sub $8, %rsp\n" "add $8, %rsp\n" "lea (%rdi,%rsi), %rax\n" "ret\n" END(first_sub)
	".p2align 4\n" FUNCTION(first_mov)
	"mov %rdi, %rax\n" "add %rsi, %rax\n" "ret\n" END(first_mov)
	".p2align 4\n" FUNCTION(first_lea)
	"lea (%rdi,%rsi), %rax\n" "ret\n" END(first_lea)
	".p2align 4\n" FUNCTION(first_push_r15)
	"push %r15\n" "pop %r15\n" "lea (%rdi,%rsi), %rax\n" "ret\n" END(first_push_r15)
	".p2align 4\n" FUNCTION(first_jcc)
	".byte 0x76, 0x00\n" "lea (%rdi,%rsi), %rax\n" "ret\n" END(first_jcc)
);

long pro_endbr_push(long, long), pro_endbr_arg(long, long), pro_sub(long, long), pro_endbr_sub(long, long),
	pro_mov(long, long), pro_push(long, long), pro_loop(long, long), pro_tailer(long, long), pro_tail(long, long),
	pro_entered(long, long), enter_past(long, long),
	first_push(long, long), first_nop(long, long), first_nop5(long, long), first_jmp(long, long),
	first_endbr(long, long), first_sub(long, long), first_mov(long, long), first_lea(long, long),
	first_push_r15(long, long), first_jcc(long, long);

static const struct {
	const char *name;
	long (*fn)(long, long);
	int in_rounds; /* called by every round when no ONLY is given */
} calls[] = {
	{ "pro_endbr_push", pro_endbr_push, 1 }, { "pro_endbr_arg", pro_endbr_arg, 1 },
	{ "pro_sub", pro_sub, 1 }, { "pro_endbr_sub", pro_endbr_sub, 1 }, { "pro_mov", pro_mov, 1 },
	{ "pro_push", pro_push, 1 }, { "pro_loop", pro_loop, 1 }, { "pro_tailer", pro_tailer, 1 },
	{ "pro_tail", pro_tail, 0 }, { "pro_entered", pro_entered, 1 }, { "enter_past", enter_past, 1 },
	{ "first_push", first_push, 0 }, { "first_nop", first_nop, 0 },
	{ "first_nop5", first_nop5, 0 }, { "first_jmp", first_jmp, 0 }, { "first_endbr", first_endbr, 0 },
	{ "first_sub", first_sub, 0 }, { "first_mov", first_mov, 0 }, { "first_lea", first_lea, 0 },
	{ "first_push_r15", first_push_r15, 0 }, { "first_jcc", first_jcc, 0 },
};
#define NCALLS (sizeof calls / sizeof calls[0])

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10;
	sleep_for_us = argc > 2 ? atol(argv[2]) : 0;
	const char *only = argc > 3 ? argv[3] : NULL;
	long (*single)(long, long) = NULL;
	if (only) {
		for (size_t k = 0; k < NCALLS; k++)
			if (strcmp(calls[k].name, only) == 0)
				single = calls[k].fn;
		if (!single) {
			fprintf(stderr, "prologues: no function %s\n", only);
			return 2;
		}
	}
	if (!wait_for_go("PROLOGUES_WAIT"))
		return 3;
	long sum = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 1; i <= n; i++) {
		if (single) {
			sum += single(i, 2 * i);
			continue;
		}
		for (size_t k = 0; k < NCALLS; k++)
			if (calls[k].in_rounds)
				sum += calls[k].fn(i, 2 * i);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (getenv("PROLOGUES_TIME"))
		fprintf(stderr, "elapsed_ns %ld\n", (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec));
	printf("sum %ld\n", sum);
	return (int)(n % 7);
}
