"""Variants: the models an experiment trains after the reference, as typed records.

A :class:`Variant` is a method (any entry of :data:`~anchored_learning.methods.METHODS`, ``"lora"``
or ``"wise_ft"``) plus field overrides; its ``label`` names its row in the report, its evaluation
file and its model folder.  Sweep entries (``--sweep method.field=v1,v2``) become variants here.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

from anchored_learning.methods import METHODS

#: variants an experiment can add after the reference and the anchored student: any registered
#: method, "lora" (plain SFT with LoRA adapters) and "wise_ft" (weight interpolation, no training)
VARIANTS = (*METHODS, "lora", "wise_ft")


class Variant(NamedTuple):
    """One planned model.

    Attributes:
        label: its row in the report and the name of its files (``sft(learning_rate=1e-4)``).
        method: a registered method, ``"lora"`` or ``"wise_ft"`` (its family on the frontier).
        overrides: the :class:`~anchored_learning.config.AnchoredSFTConfig` fields it sets on top
            of the experiment's (``{"weight": w}`` for WiSE-FT).
    """

    label: str
    method: str
    overrides: dict[str, Any]

    @property
    def needs_reference(self) -> bool:
        """Its model is made from the reference model p_sft (a method that reads it, or WiSE-FT)."""
        return self.method == "wise_ft" or (self.method in METHODS and METHODS[self.method].needs_reference)


def short_number(x: float) -> str:
    """``1e-4`` -> ``"1e-4"``, ``3e-4`` -> ``"3e-4"``, ``0.25`` -> ``"0.25"`` (labels of runs)."""
    e = f"{x:.0e}"
    if float(e) == x and abs(x) < 1e-2:
        mant, exp = e.split("e")
        return f"{mant}e{int(exp)}"
    return f"{x:g}"


def wise_ft(weight: float) -> Variant:
    """The WiSE-FT point of weight ``weight`` (0 = base, 1 = reference)."""
    return Variant(f"wise_ft(w={float(weight):g})", "wise_ft", {"weight": float(weight)})


def _sweep_value(entry: str, raw: str) -> Any:
    """One sweep value: int, then float, else the string."""
    raw = raw.strip()
    if raw == "":
        raise ValueError(f"sweep entry {entry!r} has an empty value; write method.field=v1,v2")
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def _split_entry(entry: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """``"sft.lr=1,2;ep=3"`` -> ``("sft", [("lr", ["1", "2"]), ("ep", ["3"])])``."""
    try:
        method, rest = entry.split(".", 1)
        grid = []
        for part in rest.split(";"):
            fld, values = part.split("=", 1)
            grid.append((fld.strip(), [v.strip() for v in values.split(",")]))
    except ValueError:
        raise ValueError(
            f"sweep entry {entry!r} must look like method.field=v1,v2 (e.g. anchored.anchor_alpha=0.25,0.75; "
            "several fields: sft.learning_rate=1e-4,3e-4;num_train_epochs=1,3)"
        ) from None
    return method, grid


def _check_entry(entry: str, method: str, grid: list[tuple[str, list[str]]], planned: Sequence[str]) -> None:
    from anchored_learning.config import AnchoredSFTConfig

    fields = {f.name for f in dataclasses.fields(AnchoredSFTConfig)}
    if method not in VARIANTS:
        raise ValueError(f"sweep entry {entry!r}: unknown method {method!r}; choose one of {', '.join(VARIANTS)}")
    names = [fld for fld, _ in grid]
    if len(set(names)) != len(names):
        raise ValueError(f"sweep entry {entry!r} names a field twice")
    for fld, raws in grid:
        if fld in planned:
            raise ValueError(f"sweep entry {entry!r}: {fld!r} is set by the experiment itself and cannot be swept")
        if method == "wise_ft" and fld != "weight":
            raise ValueError(f"sweep entry {entry!r}: wise_ft takes one field, 'weight' (wise_ft.weight=0.25,0.75)")
        if method != "wise_ft" and fld not in fields:
            import difflib

            close = difflib.get_close_matches(fld, sorted(fields), n=1, cutoff=0.75)
            raise ValueError(
                f"sweep entry {entry!r}: {fld!r} is not a field of AnchoredSFTConfig"
                + (f" (did you mean {close[0]!r}?)" if close else " (the fields of `anchored train --help`)")
            )
        for raw in raws:
            val = _sweep_value(entry, raw)
            if method == "wise_ft" and not (isinstance(val, (int, float)) and 0.0 <= val <= 1.0):
                raise ValueError(f"sweep entry {entry!r}: wise_ft.weight must be a number in [0, 1], got {raw!r}")


#: AnchoredSFTConfig fields the experiment sets for every stage (a sweep cannot vary them)
PLANNED_FIELDS = ("method", "output_dir", "reference_model", "logging_dir", "run_name")


def parse_sweep(entries: Sequence[str]) -> list[Variant]:
    """Sweep entries -> variants, one per value (or per combination of values).

    ``"anchored.anchor_alpha=0.25,0.75"`` gives ``anchored(anchor_alpha=0.25)`` and
    ``anchored(anchor_alpha=0.75)``; ``"sft.learning_rate=3e-5,1e-4;num_train_epochs=1,3"`` (fields
    joined by ``;``) gives the 4 combinations, e.g. ``sft(learning_rate=3e-5,num_train_epochs=1)``,
    the last field varying fastest.  Values are parsed as int, then float, then kept as strings.

    Raises:
        ValueError: an entry not of the form ``method.field=v1[,v2...][;field=...]``, an unknown
            method or field, a field given twice, an empty value, a WiSE-FT weight outside [0, 1].
    """
    out = []
    for entry in entries:
        method, grid = _split_entry(entry)
        _check_entry(entry, method, grid, PLANNED_FIELDS)
        names = [fld for fld, _ in grid]
        for combo in itertools.product(*(raws for _, raws in grid)):
            label = ",".join(f"{fld}={raw}" for fld, raw in zip(names, combo))
            overrides = {fld: _sweep_value(entry, raw) for fld, raw in zip(names, combo)}
            out.append(Variant(f"{method}({label})", method, overrides))
    return out
