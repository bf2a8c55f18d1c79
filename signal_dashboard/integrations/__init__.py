"""Other tools' connections: the pytest plugin and its report, OpenTelemetry, Celery, and the
real servers tests start (testing/).

They subscribe to the recorder or watch hygiene: nothing in capture or record imports them.
"""
