/* An is-enabled (semaphore-guarded) marker: the semaphore is the counter a
 * tracer raises while it probes coral:guarded; the marker fires only then. */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

unsigned short coral_guarded_semaphore __attribute__((unused)) __attribute__((section(".probes")));

__attribute__((noinline)) long coral_fire_guarded(long i)
{
	if (!coral_guarded_semaphore)
		return 0;
	DTRACE_PROBE1(coral, guarded, i * 10);
	return 1;
}
