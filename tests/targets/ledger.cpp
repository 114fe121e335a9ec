// C++ target: billing::Ledger::post (a method) plus an overload pair.
#include <cstdio>
#include <cstdlib>

namespace billing {
class Ledger {
  public:
	__attribute__((noinline)) long post(long cents);
	long total = 0;
};
long Ledger::post(long cents)
{
	total += cents;
	return total;
}
__attribute__((noinline)) long fee(long cents) { return cents / 100; }
__attribute__((noinline)) long fee(int cents, int pct) { return cents * pct / 100; }
} // namespace billing

int main(int argc, char **argv)
{
	long n = argc > 1 ? std::atol(argv[1]) : 10;
	billing::Ledger ledger;
	long f = 0;
	for (long i = 1; i <= n; i++) {
		ledger.post(i);
		f += billing::fee(i) + billing::fee((int)i, 2);
	}
	std::printf("total %ld fees %ld\n", ledger.total, f);
	return 0;
}
