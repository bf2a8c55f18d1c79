"""Real servers for tests and benchmarks: ``processes`` (children, ports, readiness) and
``redis_server`` (a throwaway ``redis-server``)."""
