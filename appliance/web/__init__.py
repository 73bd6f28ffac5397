"""The HTTPS server: the call-takers' page, its API, /healthz and /metrics."""
