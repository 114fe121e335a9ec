/* A small payments service for coral's demo and tests. ProcessPayment's
 * latency varies (1-20 ms) and every --slow-every'th call is slow (600 ms);
 * customers whose id is a multiple of 7 are declined (return value 1).
 * Everything is deterministic, so a probe's output can be checked exactly:
 *   ./payments --calls 100 --slow-every 10   -> 100 calls, 10 slow, 14 declined */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long calls = 100, slow_every = 10, slow_ms = 600, threads = 1;
static int no_sleep;

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0)
		;
}

__attribute__((noinline)) int ValidateCard(long customer_id)
{
	return customer_id % 7 != 0;
}

/* Returns 0 when accepted, 1 when declined. */
__attribute__((noinline)) int ProcessPayment(long amount_cents, long customer_id)
{
	if (!no_sleep) {
		long n = customer_id - 1;
		if (slow_every > 0 && (n + 1) % slow_every == 0)
			sleep_us(slow_ms * 1000);
		else
			sleep_us(1000 + (n * 7919 % 20) * 1000);
	}
	return ValidateCard(customer_id) ? 0 : 1;
}

__attribute__((noinline)) int ProcessRefund(long amount_cents, long customer_id)
{
	return amount_cents > 0 && customer_id > 0 ? 0 : 1;
}

static void *worker(void *arg)
{
	long declined = 0;
	for (long i = 1; i <= calls; i++)
		declined += ProcessPayment(100 * i, i);
	return (void *)declined;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "calls", required_argument, 0, 'c' },
		{ "slow-every", required_argument, 0, 's' },
		{ "slow-ms", required_argument, 0, 'm' },
		{ "threads", required_argument, 0, 't' },
		{ "no-sleep", no_argument, 0, 'n' },
		{ 0, 0, 0, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'c': calls = atol(optarg); break;
		case 's': slow_every = atol(optarg); break;
		case 'm': slow_ms = atol(optarg); break;
		case 't': threads = atol(optarg); break;
		case 'n': no_sleep = 1; break;
		default:
			fprintf(stderr, "usage: payments [--calls N] [--slow-every K] [--slow-ms MS] "
					"[--threads T] [--no-sleep]\n");
			return 2;
		}
	}
	pthread_t tids[64];
	long declined = 0;
	if (threads < 1 || threads > 64)
		threads = 1;
	for (long t = 0; t < threads; t++)
		pthread_create(&tids[t], NULL, worker, NULL);
	for (long t = 0; t < threads; t++) {
		void *d;
		pthread_join(tids[t], &d);
		declined += (long)d;
	}
	int refund = ProcessRefund(100, 1);
	printf("payments: %ld calls, %ld declined, refund %d\n", calls * threads, declined, refund);
	return 0;
}
