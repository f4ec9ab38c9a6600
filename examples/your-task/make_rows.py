"""Write the walkthrough's example task (run once; the jsonl files are committed).

A shop bill in `messages` form: a system turn, the customer's order, and a worked answer that
ends with "Total: N euros".  Scored with `--score last_number`.  Deterministic (seed 0).
"""

import json
import random
from pathlib import Path

SYSTEM = "You are the cashier of a small shop. Work out the bill step by step and end with 'Total: N euros'."
ITEMS = ["notebooks", "pens", "apples", "candles", "mugs", "stamps", "lemons", "batteries", "postcards", "socks"]


def row(rng: random.Random) -> dict:
    (a, b), (qa, qb), (pa, pb) = rng.sample(ITEMS, 2), (rng.randint(2, 5), rng.randint(2, 5)), (rng.randint(1, 9), rng.randint(1, 9))
    order = f"I buy {qa} {a} at {pa} euros each and {qb} {b} at {pb} euros each. How much do I pay?"
    answer = (
        f"{qa} x {pa} = {qa * pa} euros for the {a}, {qb} x {pb} = {qb * pb} euros for the {b}. "
        f"Total: {qa * pa + qb * pb} euros."
    )
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": order},
            {"role": "assistant", "content": answer},
        ]
    }


if __name__ == "__main__":
    rng = random.Random(0)
    rows = []
    while len(rows) < 64:
        r = row(rng)
        if r not in rows:
            rows.append(r)
    here = Path(__file__).parent
    for name, part in (("train.jsonl", rows[:48]), ("test.jsonl", rows[48:])):
        (here / name).write_text("".join(json.dumps(r) + "\n" for r in part))
