"""Test-session settings.

Mixed precision is detected from the hardware (bf16 autocast where the CPU or GPU computes bf16
natively).  Tests must give the same numbers on every machine, so the session runs float32 unless a
test asks for bf16 explicitly; the variable is inherited by the subprocesses tests start (torchrun,
the CLI, the killed-run tests).  Likewise the reuse of base evaluations across run folders is off.
"""

import os

os.environ["ANCHORED_BF16"] = "0"
# Base evaluations are not reused across the tests' run folders (nor from a user's cache): each
# test sees its own stages run; tests of the reuse point the variable at a folder of their own.
os.environ["ANCHORED_EVAL_CACHE"] = "off"
