"""Test-session settings.

Mixed precision is detected from the hardware (bf16 autocast where the CPU or GPU computes bf16
natively).  Tests must give the same numbers on every machine, so the session runs float32 unless a
test asks for bf16 explicitly; the variable is inherited by the subprocesses tests start (torchrun,
the CLI, the killed-run tests).
"""

import os

os.environ["ANCHORED_BF16"] = "0"
