"""On the sending thread: the Signal patch and the send path, origins and the current send, the
event records, payload, labels, errors, locations, the recording switch, the query counter,
hygiene's connect watch and the task boundaries.

Imports Django, the standard library, ``conf`` and itself: nothing above it.
"""
