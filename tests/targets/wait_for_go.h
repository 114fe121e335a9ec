/* Test targets: with the environment variable `name` set, say "ready" and
 * wait for a line on stdin, so a test can attach to the running process
 * before the calls start. False when stdin ended instead. */
#include <stdio.h>
#include <stdlib.h>

static int wait_for_go(const char *name)
{
	if (!getenv(name))
		return 1;
	printf("ready\n");
	fflush(stdout);
	char line[8];
	return fgets(line, sizeof line, stdin) != NULL;
}
