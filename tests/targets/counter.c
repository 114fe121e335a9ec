/* counter N SLEEP_US [SLOW_EVERY SLOW_US]: calls coral_work(i, i*2) N times.
 * coral_work returns i*3; call i sleeps SLOW_US when i % SLOW_EVERY == 0,
 * else SLEEP_US. Waits for a line on stdin first when COUNTER_WAIT is set,
 * so a test can attach to the running process before the calls start. */
#include <stdio.h>
#include <stdlib.h>
#include "wait_for_go.h"
#include <time.h>

static void sleep_us(long us)
{
	if (us <= 0)
		return;
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0)
		;
}

__attribute__((noinline)) long coral_work(long i, long twice, long sleep)
{
	sleep_us(sleep);
	return i * 3 + (twice - 2 * i);
}

__attribute__((noinline)) long coral_recurse(long depth)
{
	if (depth <= 0)
		return 0;
	sleep_us(100);
	long inner = coral_recurse(depth - 1);
	__asm__ volatile("" : "+r"(inner)); /* keep real frames: no loop conversion */
	return inner + 1;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10;
	long sleep = argc > 2 ? atol(argv[2]) : 0;
	long slow_every = argc > 3 ? atol(argv[3]) : 0;
	long slow = argc > 4 ? atol(argv[4]) : 0;
	if (!wait_for_go("COUNTER_WAIT"))
		return 3;
	long sum = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 1; i <= n; i++)
		sum += coral_work(i, 2 * i, slow_every && i % slow_every == 0 ? slow : sleep);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (getenv("COUNTER_TIME"))
		fprintf(stderr, "elapsed_ns %ld\n", (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec));
	if (getenv("COUNTER_RECURSE"))
		sum += coral_recurse(atol(getenv("COUNTER_RECURSE")));
	printf("sum %ld\n", sum);
	return (int)(n % 7);
}
