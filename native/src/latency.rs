//! Session-wide latency distribution, fed by the consumer thread.

use hdrhistogram::Histogram;

pub struct Latency {
    histogram: Histogram<u64>,
    pub events: u64,
}

impl Default for Latency {
    fn default() -> Self {
        // 1 ns .. 1 hour at 3 significant digits: ~0.1% error, a few hundred KiB.
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds");
        Latency { histogram, events: 0 }
    }
}

impl Latency {
    #[inline]
    pub fn record(&mut self, duration_ns: u64) {
        self.histogram.saturating_record(duration_ns.max(1));
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn percentile(&self, p: f64) -> Option<u64> {
        (self.histogram.len() > 0).then(|| self.histogram.value_at_percentile(p))
    }

    pub fn max(&self) -> Option<u64> {
        (self.histogram.len() > 0).then(|| self.histogram.max())
    }
}
