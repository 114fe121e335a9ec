#include <stdio.h>
#include <stdlib.h>
long coral_lib_add(long a, long b);
int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10, sum = 0;
	for (long i = 0; i < n; i++)
		sum += coral_lib_add(i, 1);
	printf("sum %ld\n", sum);
	return 0;
}
