/* threads T N: T threads, thread k (1-based) calls coral_thread_work N*k times. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long n;

__attribute__((noinline)) long coral_thread_work(long k)
{
	__asm__ volatile("" ::: "memory");
	return k;
}

static void *run(void *arg)
{
	long k = (long)arg, sum = 0;
	for (long i = 0; i < n * k; i++)
		sum += coral_thread_work(k);
	return (void *)sum;
}

int main(int argc, char **argv)
{
	long t = argc > 1 ? atol(argv[1]) : 4;
	n = argc > 2 ? atol(argv[2]) : 1000;
	pthread_t tids[32];
	for (long k = 1; k <= t; k++)
		pthread_create(&tids[k - 1], NULL, run, (void *)k);
	long total = 0;
	for (long k = 1; k <= t; k++) {
		void *r;
		pthread_join(tids[k - 1], &r);
		total += (long)r;
	}
	printf("total %ld\n", total);
	return 0;
}
