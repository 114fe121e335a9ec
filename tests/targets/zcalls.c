/* zcalls N: calls libz's crc32 N times. Linked to a private copy of libz
 * through RUNPATH ($ORIGIN/lib) while ld.so's cache names the system's, so
 * a probe on the wrong same-named file sees nothing. Waits for a line on
 * stdin first when ZCALLS_WAIT is set, so a test can attach by pid. */
#include <stdio.h>
#include <stdlib.h>
#include "wait_for_go.h"

/* zlib.h's prototype, declared here so no zlib headers are needed. */
unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len);

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10;
	if (!wait_for_go("ZCALLS_WAIT"))
		return 3;
	unsigned long crc = 0;
	for (long i = 0; i < n; i++) {
		unsigned char byte = (unsigned char)i;
		crc = crc32(crc, &byte, 1);
	}
	printf("crc %lx\n", crc);
	return 0;
}
