"""Prompt and gold-response formatting shared by the MedCalc generator and CSV loader.

The prompt is MedCalc-Bench's zero-shot prompt (``evaluation/run.py``, ``zero_shot``): a system
turn and a user turn that ask for a JSON dict ``{"step_by_step_thinking": ..., "answer": ...}``,
the only answer format the benchmark's own extraction reads.  The gold response is that JSON
dict on one line: the calculator's explanation as the thinking and the ground truth as the answer.
"""

from __future__ import annotations

import json
from typing import Any

from anchored_learning.tasks.medcalc.scoring import format_answer

_JSON_FORMAT = (
    '{"step_by_step_thinking": str(your_step_by_step_thinking_procress_to_solve_the_question), '
    '"answer": str(short_and_direct_answer_of_the_question)}'
)
#: MedCalc-Bench's zero-shot system message (the benchmark's own wording, typo included)
SYSTEM_PROMPT = (
    "You are a helpful assistant for calculating a score for a given patient note. Please think step-by-step "
    "to solve the question and then generate the required score. Your output should only contain a JSON dict "
    f"formatted as {_JSON_FORMAT}."
)


def _response(explanation: str, answer: Any, output_type: str) -> str:
    """The gold response: ``{"step_by_step_thinking": <explanation>, "answer": "<answer>"}`` on one line."""
    record = {"step_by_step_thinking": _clean_explanation(explanation), "answer": format_answer(answer, output_type)}
    return json.dumps(record, ensure_ascii=False)


def _clean_explanation(text: str) -> str:
    # The package's explanations contain triple-quoted indented blocks and some literal "\n".
    text = text.replace("\\n", "\n")
    lines = [line.strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _prompt(note: str, question: str) -> list[dict[str, str]]:
    """MedCalc-Bench's zero-shot conversation for one patient note and question."""
    user = (
        f"Here is the patient note:\n{note}\n\nHere is the task:\n{question}\n\n"
        f"Please directly output the JSON dict formatted as {_JSON_FORMAT}:"
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
