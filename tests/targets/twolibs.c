/* twolibs PAY BILL: PAY calls of libcoralpay's coral_charge, then BILL of
 * libcoralbill's, then one of its own coral_charge_total. Waits for a line on
 * stdin first when TWOLIBS_WAIT is set, so a test can attach by pid. */
#include <stdio.h>
#include <stdlib.h>
#include "wait_for_go.h"

long coralpay_run(long n);
long coralbill_run(long n);

/* The program's own coral_charge*: a wildcard finds it before the libraries'. */
__attribute__((noinline)) long coral_charge_total(long a, long b)
{
	__asm__ volatile("" ::: "memory");
	return a + b;
}

int main(int argc, char **argv)
{
	long pay = argc > 1 ? atol(argv[1]) : 10, bill = argc > 2 ? atol(argv[2]) : 10;
	if (!wait_for_go("TWOLIBS_WAIT"))
		return 3;
	printf("total %ld\n", coral_charge_total(coralpay_run(pay), coralbill_run(bill)));
	return 0;
}
