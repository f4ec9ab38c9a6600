"""Write the walkthrough's example task (run once; the jsonl files are committed).

Date normalisation in TRL's `messages` form: a system turn asking for ISO 8601, a sentence that
mentions a date in one of several written styles, and the gold answer `YYYY-MM-DD`.  Scored with
`--score exact_match`.  Deterministic (seed 0); the test rows use dates that no training row has.
"""

import calendar
import json
import random
from pathlib import Path

SYSTEM = "Reply with the date mentioned in the message in ISO 8601 form (YYYY-MM-DD) and nothing else."
EVENTS = [
    "The contract was signed",
    "Our office moved",
    "The concert took place",
    "My sister was born",
    "The bridge opened",
    "The package arrived",
    "We planted the oak tree",
    "The museum reopened",
    "The team won the cup",
    "The shop closed",
]


def ordinal(d: int) -> str:
    return f"{d}{'th' if 10 <= d % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


def row(rng: random.Random, y: int, m: int, d: int) -> dict:
    month = calendar.month_name[m]
    style = rng.choice(
        [
            f"on {d} {month} {y}",
            f"on {month} {d}, {y}",
            f"on the {ordinal(d)} of {month} {y}",
            f"on {month} {ordinal(d)}, {y}",
            f"on {calendar.month_abbr[m]}. {d}, {y}",
        ]
    )
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{rng.choice(EVENTS)} {style}."},
            {"role": "assistant", "content": f"{y:04d}-{m:02d}-{d:02d}"},
        ]
    }


if __name__ == "__main__":
    rng = random.Random(0)
    dates: list[tuple[int, int, int]] = []
    while len(dates) < 64:
        y, m = rng.randint(1950, 2030), rng.randint(1, 12)
        date = (y, m, rng.randint(1, calendar.monthrange(y, m)[1]))
        if date not in dates:
            dates.append(date)
    rows = [row(rng, *date) for date in dates]
    here = Path(__file__).parent
    for name, part in (("train.jsonl", rows[:48]), ("test.jsonl", rows[48:])):
        (here / name).write_text("".join(json.dumps(r) + "\n" for r in part))
