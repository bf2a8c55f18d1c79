"""Off the sending thread: the recorder (drains, buffers, subscribers), the statistics, findings
judged after the fact, broadcast and the event filter.

Imports ``capture``; never a backend, the web or an integration.
"""
