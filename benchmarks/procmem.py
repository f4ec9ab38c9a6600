"""Resident-memory probes shared by the benchmarks (Linux ``/proc/self``).

``VmHWM`` is the process's RSS high-water mark; writing ``5`` to ``/proc/self/clear_refs`` resets
it to the current RSS, so the peak of one phase can be read at its end.
"""

from __future__ import annotations

import resource


def rss(field: str = "VmRSS") -> int:
    """``VmRSS`` (current) or ``VmHWM`` (peak since start or the last reset) of this process, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_hwm() -> bool:
    """Reset ``VmHWM`` to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def maxrss() -> int:
    """``ru_maxrss`` in bytes (through fork+exec it includes the parent image's high-water mark)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
