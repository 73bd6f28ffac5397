"""Process runtime: health, watchdog, logging, metrics, state directory, supervision."""
