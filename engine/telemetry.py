"""No file outside the output folder and the system's temporary folder: third-party telemetry off.

onnxruntime (the Silero VAD session) records telemetry events in a local database under the
user's home, `~/.cache/Microsoft/DeveloperTools/.onnxruntime/` (a `deviceid` and an
`onnxruntime.db` of queued events), as soon as the library loads; `disable_telemetry_events()`
comes too late for that. Its documented switch is the environment variable
`ORT_DISABLE_TELEMETRY=1`, read when the library loads, so it is set here before any process of
a run imports onnxruntime (decode workers inherit the environment). Issue 27 item 6.
"""

from __future__ import annotations

import os

ENVIRONMENT = {"ORT_DISABLE_TELEMETRY": "1"}


def turn_off_telemetry() -> None:
    """Set the switches in this process's environment (and so its children's); call it before
    onnxruntime is imported."""
    os.environ.update(ENVIRONMENT)
