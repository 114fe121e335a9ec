/* Built twice, as libcoralpay.so and libcoralbill.so (LIB names its entry
 * point): both define coral_charge, so a program loading both has one name
 * in two objects. Linked with -Bsymbolic-functions, each library's calls go
 * to its own copy, so a probe on either copy counts that library's calls. */
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)

__attribute__((noinline)) long coral_charge(long cents)
{
	__asm__ volatile("" ::: "memory");
	return cents + 1;
}

long CAT(LIB, _run)(long n)
{
	long sum = 0;
	for (long i = 0; i < n; i++)
		sum += coral_charge(i);
	return sum;
}
