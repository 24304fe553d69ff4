"""Benchmark helper: what the machine was doing while we measured."""

import os


def load():
    """The load averages, printed beside every timing (others' work slows both sides)."""
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "load average unavailable"
