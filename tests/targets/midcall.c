/* midcall: a busy program that is always in the middle of some call.
 * One thread calls coral_tick() ~100,000 times a second, forever. Lines on
 * stdin drive the rest: "hold" starts a thread that enters coral_hold() and
 * stays inside until "release" lets every held call return. Each command is
 * answered on stdout ("held N", "released N") once its calls are inside
 * coral_hold (or have returned), so a test knows exactly what is in flight.
 * At the end of stdin it goes on ticking until it is killed. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static long generation, inside, returned;

__attribute__((noinline)) long coral_tick(long i)
{
	__asm__ volatile("" ::: "memory");
	return i + 1;
}

__attribute__((noinline)) long coral_hold(long my_generation)
{
	pthread_mutex_lock(&lock);
	inside++;
	pthread_cond_broadcast(&changed);
	while (generation == my_generation)
		pthread_cond_wait(&changed, &lock);
	inside--;
	returned++;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	return my_generation;
}

static void *hold_thread(void *arg)
{
	coral_hold((long)arg);
	return NULL;
}

static void *tick_thread(void *arg)
{
	struct timespec pause = { 0, 1000000 };
	for (long i = 0;; i++) {
		coral_tick(i);
		if (i % 100 == 99)
			nanosleep(&pause, NULL);
	}
	return arg;
}

int main(void)
{
	pthread_t t;
	pthread_create(&t, NULL, tick_thread, NULL);
	printf("ready\n");
	fflush(stdout);
	char line[64];
	long held = 0;
	while (fgets(line, sizeof line, stdin)) {
		pthread_mutex_lock(&lock);
		if (!strncmp(line, "hold", 4)) {
			long want = inside + 1;
			pthread_create(&t, NULL, hold_thread, (void *)generation);
			pthread_detach(t);
			while (inside < want)
				pthread_cond_wait(&changed, &lock);
			held = inside;
			printf("held %ld\n", held);
		} else if (!strncmp(line, "release", 7)) {
			long want = returned + inside;
			generation++;
			pthread_cond_broadcast(&changed);
			while (returned < want)
				pthread_cond_wait(&changed, &lock);
			printf("released %ld\n", returned);
		}
		pthread_mutex_unlock(&lock);
		fflush(stdout);
	}
	for (;;)
		pause();
}
