"""Latency statistics: this process's store (store, with the series it keeps in series), other
processes' merged in (merge), and the latency table's query and rows (table). The histograms
they hold are capture/histogram.py's."""
