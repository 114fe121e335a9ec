/* A shared library function, probed through the library, not the program. */
__attribute__((noinline)) long coral_lib_add(long a, long b)
{
	__asm__ volatile("" ::: "memory");
	return a + b;
}
