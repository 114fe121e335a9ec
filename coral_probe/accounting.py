"""Where every hit of a probe session went, from the kernel's counters
(bpf/coral_event.h) and what the consumer delivered. One identity holds at
every stop:

    hits = delivered + lost + filtered + in_flight_at_stop

`lost` is every call coral saw and could not report: the ring buffer was
full (or a thread or the Go pairing table had no room), the call nested too
deep, or its frame was unwound without a return (longjmp, C++ exceptions; a
Go call its goroutine's panic unwound stays in flight).
Returns of calls that began before the probes were attached are not hits:
they are counted apart, as `in_flight_at_attach`."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Accounting:
    hits: int
    delivered: int
    lost_ring: int         # ring buffer full, or no per-thread storage
    too_deep: int          # nested past the open-call limit
    unwound: int           # the frame unwound without a return
    filtered: int          # --sample, --min-duration
    in_flight_at_attach: int
    in_flight_at_stop: int

    @classmethod
    def of(cls, counters: dict[str, int], delivered: int) -> "Accounting":
        return cls(hits=counters["hits"], delivered=delivered, lost_ring=counters["lost"],
                   too_deep=counters["too_deep"], unwound=counters["unpaired"], filtered=counters["filtered"],
                   in_flight_at_attach=counters["before_attach"],
                   in_flight_at_stop=counters["opened"] - counters["closed"])

    @property
    def lost(self) -> int:
        return self.lost_ring + self.too_deep + self.unwound

    @property
    def unaccounted(self) -> int:
        """Zero unless coral has a bug: hits the identity does not place."""
        return self.hits - (self.delivered + self.lost + self.filtered + self.in_flight_at_stop)

    def summary_parts(self) -> list[str]:
        parts = [f"hits {self.hits:,}", f"delivered {self.delivered:,}"]
        causes = [f"{n:,} {what}" for n, what in ((self.lost_ring, "ring full"), (self.too_deep, "too deep"),
                                                 (self.unwound, "unwound")) if n]
        parts.append(f"lost {self.lost:,}" + (f" ({', '.join(causes)})" if causes else ""))
        if self.filtered:
            parts.append(f"filtered {self.filtered:,}")
        if self.in_flight_at_stop:
            parts.append(f"in flight at stop {self.in_flight_at_stop:,}")
        if self.in_flight_at_attach:
            parts.append(f"in flight at attach {self.in_flight_at_attach:,}")
        if self.unaccounted:
            parts.append(f"UNACCOUNTED {self.unaccounted:,} (a coral bug: please report it)")
        return parts
