/* usdt_target N [ROUNDS]: fires USDT markers (sys/sdt.h) a known number of
 * times, in ROUNDS rounds (default 1), each round:
 *   coral:tick(i, i*2)                          N times, i = 1..N
 *   coral:six(i, -i, 2i, -2i, 3i & 0xff, -3i)   N times: six arguments of
 *                                               mixed widths and signs
 *   coral:guarded(i*10)                         N times, but only while a
 *                                               tracer raised its semaphore
 *                                               (usdt_guarded.c)
 *   coral:bare()                                once, no arguments
 * then prints "round R guarded G" (G: the calls that found coral:guarded
 * enabled). With USDT_WAIT set, says "ready" and waits for a line on stdin
 * before each round, so a test can attach to (and detach from) it running. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include "wait_for_go.h"

long coral_fire_guarded(long i); /* usdt_guarded.c: 1 if the marker was enabled */

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10;
	long rounds = argc > 2 ? atol(argv[2]) : 1;
	for (long r = 1; r <= rounds; r++) {
		if (!wait_for_go("USDT_WAIT"))
			return 3;
		long guarded = 0;
		for (long i = 1; i <= n; i++) {
			DTRACE_PROBE2(coral, tick, i, i * 2);
			int neg = (int)-i;
			short twice = (short)(2 * i);
			unsigned char thrice = (unsigned char)(3 * i);
			DTRACE_PROBE6(coral, six, i, neg, twice, -2 * i, thrice, -3 * i);
			guarded += coral_fire_guarded(i);
		}
		DTRACE_PROBE(coral, bare);
		printf("round %ld guarded %ld\n", r, guarded);
		fflush(stdout);
	}
	return 0;
}
