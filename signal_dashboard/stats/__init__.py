"""Latency statistics: histograms (histogram), this process's store (store) and other
processes' merged in (merge)."""
