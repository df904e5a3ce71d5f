"""inferwatch: drift detection and monitoring for prediction logs on Kafka."""

import os

# evidently (and other libraries that honour it) send usage telemetry unless this is set;
# inferwatch never phones home, whatever imports it first.
os.environ.setdefault("DO_NOT_TRACK", "1")

__version__ = "0.1.0"
