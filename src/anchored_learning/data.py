"""One data path for the command line and the library: your files as chat prompt/completion rows.

A data source is a file (``.jsonl``, ``.json``, ``.parquet``, ``.arrow``, ``.csv``), a folder
written by ``datasets.Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or, with network, a
Hugging Face Hub dataset id.  Each row is in one of three forms (columns detected, or named with
``prompt_column`` / ``response_column``):

* ``prompt`` + ``response`` (or ``completion``): strings, or TRL's conversational lists;
* ``messages`` (TRL's conversational form, ``conversations`` also accepted): a list of
  ``{"role", "content"}`` turns, system turns included, ending with the assistant turn that is
  trained on;
* TRL's prompt + completion, either form.

Every row becomes TRL's conversational prompt-completion row ``{"prompt": [turns...],
"completion": [{"role": "assistant", "content": ...}]}``: the loss (and every anchored objective)
covers the completion's tokens only.  A multi-turn conversation trains on its final assistant turn;
earlier assistant turns are context.  Columns other than the conversation (``answer``,
``instruction_id_list``, ...) are kept for scoring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: file suffix -> ``datasets`` builder
FILE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}
#: column names read as the prompt, the response and a whole conversation, in order of preference
PROMPT_COLUMNS = ("prompt",)
RESPONSE_COLUMNS = ("response", "completion")
MESSAGES_COLUMNS = ("messages", "conversations")
ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Conversation:
    """One row of a data source, as trained on and scored.

    Attributes:
        prompt: the turns the model sees (system and user turns, earlier assistant turns).
        completion: the trained turn: one ``{"role": "assistant", "content": str}``.
        columns: every other column of the row (for scoring rules: ``answer``, IFEval ids, ...).
        where: ``file:line`` or ``file row N`` (1-based), for messages about this row.
        conversation_columns: the columns the prompt and the completion were read from.
    """

    prompt: list[dict[str, str]]
    completion: list[dict[str, str]]
    columns: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    conversation_columns: tuple[str, ...] = ()

    @property
    def response(self) -> str:
        """The trained turn's text."""
        return self.completion[0]["content"]

    def as_row(self) -> dict[str, Any]:
        """TRL's conversational prompt-completion row."""
        return {"prompt": self.prompt, "completion": self.completion}


def looks_like_hub_id(s: str) -> bool:
    """``name`` or ``org/name`` (not a relative or absolute filesystem path): a Hugging Face Hub id."""
    parts = s.split("/")
    return len(parts) <= 2 and all(parts) and not s.startswith((".", "/", "~"))


def _looks_like_hub_dataset(source: str) -> bool:
    """A Hub id without a file suffix (``my.jsonl`` that does not exist is a missing file, not an id)."""
    return looks_like_hub_id(source) and Path(source).suffix == ""


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not UTF-8 text ({e}); save the file as UTF-8") from None


def _read_jsonl(path: Path) -> list[tuple[str, Any]]:
    out = []
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            where = f"{path}:{i}"
            line = _decode(raw, where)
            if i == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark, as some editors write
            if not line.strip():
                continue
            try:
                out.append((where, json.loads(line.rstrip("\r\n"))))  # (an error's column within the line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not a JSON object ({e.msg} at column {e.colno})") from None
    return out


def _read_csv(path: Path, source: str) -> list[tuple[str, Any]]:
    """CSV rows with every cell as text ("007" is not the number 7), named by their first line."""
    import csv

    out: list[tuple[str, Any]] = []
    start = 2
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: Excel's "CSV UTF-8" byte-order mark
            reader = csv.DictReader(f)
            header = len(reader.fieldnames or [])
            for row in reader:
                where = f"{source}:{start}"
                if None in row:
                    raise ValueError(
                        f"{where}: {header + len(row[None])} cells, the header has {header}; quote cells that hold commas"
                    )
                if any(v is None for v in row.values()):
                    raise ValueError(f"{where}: fewer cells than the header's {header}")
                out.append((where, row))
                start = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: not UTF-8 text ({e}); save the file as UTF-8") from None
    except csv.Error as e:
        raise ValueError(f"{source}:{start}: not valid CSV ({e})") from None
    return out


def _read_json(path: Path, source: str) -> list[tuple[str, Any]]:
    text = _decode(path.read_bytes(), source).removeprefix("\ufeff")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if not text.lstrip().startswith("["):
            return _read_jsonl(path)  # JSON Lines saved as .json
        raise ValueError(f"{source}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), list):
        obj = next(iter(obj.values()))  # {"data": [...]}
    if not isinstance(obj, list):
        raise ValueError(f"{source}: a .json data file holds a list of row objects (or one JSON object per line)")
    return [(f"{source} row {i}", row) for i, row in enumerate(obj, 1)]


def _pick_split(splits: dict[str, Any], split: str | None, source: str, explicit: bool) -> Any:
    if split in splits:
        return splits[split]
    if not explicit and len(splits) == 1:
        return next(iter(splits.values()))
    wanted = f"no split {split!r}" if split is not None else "several splits"
    raise ValueError(f"{source} holds the splits {sorted(splits)}, {wanted}; name one with {source}:<split>")


def read_records(source: str, split: str | None = None) -> list[tuple[str, Any]]:
    """The raw rows of a data source, each with where it comes from.

    Args:
        source: a file, a ``save_to_disk`` folder or a Hub dataset id; ``SOURCE:SPLIT`` picks a
            split of a ``DatasetDict`` folder or a Hub dataset (``my_data:test``).
        split: the split used when ``source`` names none (``None``: the only split there is).

    Returns:
        ``[(where, row)]`` with ``where`` = ``file:line`` (jsonl) or ``file row N`` (1-based).

    Raises:
        ValueError: a missing file, an unknown format, a file that is not UTF-8 or not valid JSON
            (naming the file and the line), an unknown split (naming the splits there are).
    """
    explicit = False
    if ":" in source and not Path(source).exists():
        head, _, tail = source.rpartition(":")
        if tail and "/" not in tail and (Path(head).exists() or _looks_like_hub_dataset(head)):
            source, split, explicit = head, tail, True
    path = Path(source).expanduser()
    if path.is_dir():
        import datasets

        if not any((path / f).exists() for f in ("dataset_dict.json", "dataset_info.json", "state.json")):
            raise ValueError(
                f"{source} is a folder but not one written by datasets' save_to_disk; pass a data file "
                f"({', '.join(FILE_FORMATS)}) or such a folder"
            )
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = _pick_split(dict(ds), split, source, explicit)
        elif explicit:
            raise ValueError(f"{source} is a single Dataset (no splits); drop ':{split}'")
        return [(f"{source} row {i}", row) for i, row in enumerate(ds, 1)]
    if path.is_file():
        suffix = path.suffix.lower()
        if explicit:
            raise ValueError(f"{source} is a file: it has no splits; drop ':{split}' (use one file per split)")
        if suffix not in FILE_FORMATS:
            raise ValueError(
                f"{source}: unknown data format {suffix!r}; use one of {', '.join(FILE_FORMATS)} or a save_to_disk folder"
            )
        if suffix == ".jsonl":
            return _read_jsonl(path)
        if suffix == ".json":
            return _read_json(path, source)
        if suffix == ".csv":
            return _read_csv(path, source)
        import datasets

        try:
            ds = datasets.load_dataset(FILE_FORMATS[suffix], data_files=str(path), split="train")
        except Exception as e:  # datasets wraps parse errors in several types
            raise ValueError(f"{source}: cannot read it as {suffix[1:]} ({type(e).__name__}: {e})") from None
        return [(f"{source} row {i}", row) for i, row in enumerate(ds, 1)]
    if _looks_like_hub_dataset(source):
        import datasets

        try:
            ds = datasets.load_dataset(source, split=split or "train")
        except Exception as e:
            raise ValueError(
                f"{source} is not a local file or folder, and loading it as a Hub dataset failed ({type(e).__name__}: {e})"
            ) from None
        return [(f"{source} row {i}", row) for i, row in enumerate(ds, 1)]
    raise ValueError(f"{source} does not exist; pass a data file ({', '.join(FILE_FORMATS)}), a save_to_disk folder or a Hub id")


def _turns(value: Any, where: str, column: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: column {column!r} must be a non-empty list of {{'role', 'content'}} turns, got {value!r:.80}")
    out = []
    for k, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str) or not isinstance(turn.get("content"), str):
            raise ValueError(
                f"{where}: turn {k} of {column!r} must be an object with string 'role' and 'content', got {turn!r:.80}"
            )
        if turn["role"] not in ROLES:
            raise ValueError(f"{where}: turn {k} of {column!r} has role {turn['role']!r}; roles are {', '.join(ROLES)}")
        out.append({"role": turn["role"], "content": turn["content"]})
    return out


def _text_or_turns(value: Any, where: str, column: str, role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{where}: column {column!r} is empty")
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return _turns(value, where, column)
    kind = "null" if value is None else f"{type(value).__name__} {value!r:.40}"
    raise ValueError(f"{where}: column {column!r} must be a string or a list of turns, got {kind}")


def _first(columns: tuple[str, ...], row: dict) -> str | None:
    return next((c for c in columns if c in row), None)


def to_conversation(row: Any, where: str, prompt_column: str | None = None, response_column: str | None = None) -> Conversation:
    """One raw row as a :class:`Conversation` (see the module docstring for the forms).

    Args:
        row: a mapping of column -> value.
        where: ``file:line`` or ``file row N``, put at the start of every error message.
        prompt_column, response_column: the columns to read (default: detected; a
            ``prompt_column`` holding a whole conversation needs no ``response_column``).

    Raises:
        ValueError: naming the row, the columns found and what to rename or pass.
    """
    if not isinstance(row, dict):
        raise ValueError(f"{where}: each row must be an object with named columns, got {type(row).__name__}")
    found = f"columns found: {sorted(row)}"
    hint = "each row needs 'prompt' + 'response' (or 'completion'), or 'messages'; or name yours with --prompt_column/--response_column"
    for name in (prompt_column, response_column):
        if name is not None and name not in row:
            raise ValueError(f"{where}: no column {name!r} ({found})")
    pcol = prompt_column or _first(PROMPT_COLUMNS, row)
    rcol = response_column or (_first(RESPONSE_COLUMNS, row) if pcol is not None else None)
    if pcol is None:
        pcol = _first(MESSAGES_COLUMNS, row)
        if pcol is None:
            raise ValueError(f"{where}: no prompt found ({found}); {hint}")
    if rcol is None:
        if not isinstance(row[pcol], list) and pcol not in MESSAGES_COLUMNS:
            raise ValueError(f"{where}: no response column ({found}); {hint}")
        turns = _turns(row[pcol], where, pcol)  # a whole conversation: the last turn is trained
        if turns[-1]["role"] != "assistant" or not turns[-1]["content"].strip():
            raise ValueError(
                f"{where}: the conversation in {pcol!r} must end with a non-empty assistant turn (the one trained on)"
            )
        prompt, completion = turns[:-1], turns[-1:]
    else:
        prompt = _text_or_turns(row[pcol], where, pcol, "user")
        completion = _text_or_turns(row[rcol], where, rcol, "assistant")
        if len(completion) != 1 or completion[0]["role"] != "assistant" or not completion[0]["content"].strip():
            raise ValueError(f"{where}: column {rcol!r} must be one non-empty assistant turn")
    if not any(t["role"] == "user" for t in prompt):
        raise ValueError(f"{where}: the prompt has no user turn")
    extra = {k: v for k, v in row.items() if k not in (pcol, rcol)}
    return Conversation(prompt, completion, extra, where, tuple(c for c in (pcol, rcol) if c is not None))


def load_conversations(
    source: str, *, split: str | None = None, prompt_column: str | None = None, response_column: str | None = None
) -> list[Conversation]:
    """Every row of ``source`` as a :class:`Conversation` (the rows ``anchored run`` / ``train`` use).

    Raises:
        ValueError: as :func:`read_records` and :func:`to_conversation`, or a source with no rows.
    """
    rows = [to_conversation(r, w, prompt_column, response_column) for w, r in read_records(source, split)]
    if not rows:
        raise ValueError(f"{source} holds no rows; write one object with 'prompt' and 'response' (or 'messages') per row")
    return rows


def load_dataset_file(source: str, **kwargs):
    """The ``datasets.Dataset`` of TRL conversational prompt-completion rows that the command line
    trains on, for :class:`~anchored_learning.trainer.AnchoredSFTTrainer` / ``train_reference``.

    Args:
        source, **kwargs: as :func:`load_conversations`.
    """
    from datasets import Dataset

    return Dataset.from_list([c.as_row() for c in load_conversations(source, **kwargs)])


def as_prompt_completion(dataset, keep_messages: bool = False):
    """A ``datasets.Dataset`` in a form the trainer trains on response tokens only.

    Prompt-completion, pre-tokenized and other TRL forms are returned unchanged.  A ``response`` column
    (the command line's name) is renamed to ``completion``; a ``messages`` (or ``conversations``)
    column becomes conversational prompt-completion rows, the final assistant turn being the
    completion (TRL would otherwise train on every token of the conversation), unless
    ``keep_messages`` (TRL's ``assistant_only_loss``: the loss on every assistant turn).

    Raises:
        ValueError: a malformed conversation (naming the row).
    """
    cols = set(dataset.column_names)
    if "input_ids" in cols or {"prompt", "completion"} <= cols:
        return dataset
    if "prompt" in cols and "response" in cols:
        return dataset.rename_column("response", "completion")
    conv = _first(MESSAGES_COLUMNS, dict.fromkeys(cols))
    if conv is not None and "prompt" not in cols and not keep_messages:

        def split(row, i):
            return to_conversation({conv: row[conv]}, f"training dataset row {i + 1}").as_row()

        return dataset.map(split, with_indices=True, remove_columns=[conv])
    return dataset  # another TRL form ("text", ...): trained as TRL trains it


def check_response_tokens_fit(rows, tokenizer, max_length: int | None, truncation_mode: str = "keep_start") -> None:
    """Fail before any training when a training row would keep no response token after TRL's
    truncation (TRL drops such rows, and the trainer then refuses to start).

    Tokenizes each conversational prompt-completion row as TRL's ``SFTTrainer`` does: the prompt with
    the generation prompt, the prompt + completion; the response starts where the two stop agreeing.

    Args:
        rows: TRL prompt-completion rows (``{"prompt": [turns], "completion": [turns]}``, or strings).
        tokenizer: the model's tokenizer (with its chat template for conversational rows).
        max_length: the longest training sequence in tokens (None: no truncation, nothing to check).
        truncation_mode: ``"keep_start"`` (TRL's default: the sequence's end is cut) or ``"keep_end"``.

    Raises:
        ValueError: how many rows keep no response token, the first one's index and prompt length,
            and what to do (raise ``max_length`` or shorten those prompts).
    """
    if max_length is None:
        return
    empty = []
    for i, row in enumerate(rows):
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str):
            p = tokenizer(prompt)["input_ids"]
            full = tokenizer(prompt + completion)["input_ids"]
        else:
            p = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            full = tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"]
        start = next((k for k, (a, b) in enumerate(zip(p, full)) if a != b), min(len(p), len(full)))
        kept = len(full) - start if truncation_mode == "keep_end" else min(len(full), max_length) - start
        if kept <= 0:
            empty.append((i, start))
    if empty:
        i, start = empty[0]
        raise ValueError(
            f"{len(empty)} of {len(rows)} training examples have no response tokens left after truncation to "
            f"max_length={max_length} (the first: example {i}, whose prompt alone is {start} tokens; or the response "
            "is empty): raise max_length or shorten those prompts; no example is dropped silently"
        )
