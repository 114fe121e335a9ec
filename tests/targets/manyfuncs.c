/* manyfuncs ROUNDS: 2,000 functions fn_0000 ... fn_1999; fn_i is called
 * ROUNDS * (i % 4 + 1) times with argument i and returns i + 1, so that a
 * probe told the wrong function (a cookie mix-up) shows in the counts.
 * Waits for a line on stdin first when MANYFUNCS_WAIT is set. */
#include <stdlib.h>
#include "wait_for_go.h"

#define F(a, b, c, d)                                                          \
	__attribute__((noinline)) long fn_##a##b##c##d(long x)                 \
	{                                                                      \
		__asm__ volatile("" : "+r"(x)); /* one body each: no folding */ \
		return x + 1;                                                  \
	}
#define P(a, b, c, d) fn_##a##b##c##d,
#define TEN(M, a, b, c) M(a, b, c, 0) M(a, b, c, 1) M(a, b, c, 2) M(a, b, c, 3) M(a, b, c, 4) \
	M(a, b, c, 5) M(a, b, c, 6) M(a, b, c, 7) M(a, b, c, 8) M(a, b, c, 9)
#define HUNDRED(M, a, b) TEN(M, a, b, 0) TEN(M, a, b, 1) TEN(M, a, b, 2) TEN(M, a, b, 3) \
	TEN(M, a, b, 4) TEN(M, a, b, 5) TEN(M, a, b, 6) TEN(M, a, b, 7) TEN(M, a, b, 8) TEN(M, a, b, 9)
#define THOUSAND(M, a) HUNDRED(M, a, 0) HUNDRED(M, a, 1) HUNDRED(M, a, 2) HUNDRED(M, a, 3) \
	HUNDRED(M, a, 4) HUNDRED(M, a, 5) HUNDRED(M, a, 6) HUNDRED(M, a, 7) HUNDRED(M, a, 8) HUNDRED(M, a, 9)

THOUSAND(F, 0)
THOUSAND(F, 1)

static long (*const functions[])(long) = { THOUSAND(P, 0) THOUSAND(P, 1) };

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	if (!wait_for_go("MANYFUNCS_WAIT"))
		return 3;
	long sum = 0;
	for (long i = 0; i < (long)(sizeof functions / sizeof *functions); i++)
		for (long n = 0; n < rounds * (i % 4 + 1); n++)
			sum += functions[i](i);
	return sum == 0; /* uses sum: the calls stay */
}
