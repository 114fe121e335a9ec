/* usdt_throw N: throws and catches a CoralThrown N times, so libstdc++'s own
 * USDT marker libstdcxx:throw (Debian's libstdc++6) fires N times with
 * arg1 = &typeid(CoralThrown). Prints "typeinfo ADDRESS" (decimal) first. */
#include <cstdio>
#include <cstdlib>
#include <typeinfo>

struct CoralThrown {
	long i;
};

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10;
	std::printf("typeinfo %lu\n", (unsigned long)&typeid(CoralThrown));
	std::fflush(stdout);
	long caught = 0;
	for (long i = 0; i < n; i++) {
		try {
			throw CoralThrown{i};
		} catch (const CoralThrown &e) {
			caught += e.i >= 0;
		}
	}
	std::printf("caught %ld\n", caught);
	return 0;
}
