"""Prompt and gold-response formatting shared by the MedCalc generator and CSV loader."""

from __future__ import annotations

from typing import Any

from anchored_learning.tasks.medcalc.scoring import format_answer

_ANSWER_INSTRUCTION = "Think step by step, then give the final answer on its own last line in the form 'Answer: <value>'."


def _response(explanation: str, answer: Any, output_type: str) -> str:
    explanation = _clean_explanation(explanation)
    return f"{explanation}\nAnswer: {format_answer(answer, output_type)}"


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


def _prompt(note: str, question: str) -> str:
    return f"Here is the patient note:\n{note}\n\nHere is the task:\n{question}\n\n{_ANSWER_INSTRUCTION}"
