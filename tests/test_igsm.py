"""Tests for the iGSM target task.

The checks here do not trust the generator: an independent parser reads the natural-language
problem, evaluates the definitions (mod 23, or plain integers for the "add" variant) by recursion, re-derives the answer, re-checks every
arithmetic step of the gold solution, and rebuilds the solution dependency graph to compute an
exact (brute-force) canonical form for the train/test leakage check.  Only the vocabulary table
``CHAINS`` (which names are items and which are categories, and their layers) is imported.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchored_learning.tasks.base import Example, TargetTask
from anchored_learning.tasks.igsm import IGSMTask, extract_answer
from anchored_learning.tasks.igsm_generator import CHAINS, generate_problem

P = 23

# ------------------------------------------------------------------ vocabulary (data only)
LAYER: dict[str, tuple[int, int]] = {}  # item or category -> (chain index, layer)
CATEGORY_OF: dict[str, str] = {}
for ci, chain in enumerate(CHAINS):
    for li, (cat, items) in enumerate(chain):
        LAYER[cat] = (ci, li)
        for it in items:
            LAYER[it] = (ci, li)
            CATEGORY_OF[it] = cat
CATEGORIES = {cat for chain in CHAINS for cat, _ in chain}

# ------------------------------------------------------------------ independent parser

_SENT = re.compile(r"The number of each (.+?)'s (.+?) equals (.+?)\.(?= The number of|$)")
_PARAM = r"each (.+?)'s (.+?)"
_RHS = [
    ("const", re.compile(r"^(\d+)$")),
    ("add_const", re.compile(rf"^(\d+) more than {_PARAM}$")),
    ("mul_const", re.compile(rf"^(\d+) times {_PARAM}$")),
    ("add", re.compile(rf"^the sum of {_PARAM} and {_PARAM}$")),
    ("sub", re.compile(rf"^the difference of {_PARAM} and {_PARAM}$")),
    ("mul", re.compile(rf"^the product of {_PARAM} and {_PARAM}$")),
]


class Problem:
    """A problem as read back from its text."""

    def __init__(self, prompt: str) -> None:
        lines = prompt.split("\n")
        assert len(lines) == 3, lines
        assert "Answer: <number>" in lines[0]
        # the paper's iGSM says "modulo 23"; the "add" variant has no modulus
        self.mod = P if "modulo 23" in lines[0] else None
        q = re.fullmatch(r"Question: What is the number of each (.+?)'s (.+?)\?", lines[2])
        assert q, lines[2]
        self.question = (q.group(1), q.group(2))
        self.defs: dict[tuple[str, str], tuple[str, int | None, list[tuple[str, str]]]] = {}
        found = _SENT.findall(lines[1])
        # every character of the paragraph is accounted for by the sentences
        rebuilt = " ".join(f"The number of each {a}'s {b} equals {r}." for a, b, r in found)
        assert rebuilt == lines[1]
        for a, b, rhs in found:
            assert a in CATEGORY_OF and b in CATEGORY_OF, (a, b)
            assert LAYER[b][0] == LAYER[a][0] and LAYER[b][1] == LAYER[a][1] + 1, (a, b)
            assert (a, b) not in self.defs, f"defined twice: {a}'s {b}"
            for kind, rx in _RHS:
                m = rx.match(rhs)
                if m:
                    g = m.groups()
                    if kind == "const":
                        self.defs[(a, b)] = (kind, int(g[0]), [])
                    elif kind in ("add_const", "mul_const"):
                        self.defs[(a, b)] = (kind, int(g[0]), [(g[1], g[2])])
                    else:
                        self.defs[(a, b)] = (kind, None, [(g[0], g[1]), (g[2], g[3])])
                    break
            else:
                raise AssertionError(f"unparsed definition: {rhs!r}")
        self.children: dict[str, list[str]] = collections.defaultdict(list)
        for a, b in self.defs:
            self.children[a].append(b)

    def deps(self, p: tuple[str, str]) -> list[tuple[str, str]]:
        """Direct dependencies of a parameter (instance: its operands; abstract: the sum)."""
        x, y = p
        if p in self.defs:
            return list(self.defs[p][2])
        assert y in CATEGORIES and x in CATEGORY_OF, p
        assert LAYER[y][0] == LAYER[x][0] and LAYER[y][1] > LAYER[x][1], p
        assert self.children[x], f"abstract {p} over an item with no children"
        out = []
        for b in self.children[x]:
            out.append((x, b))
            if CATEGORY_OF[b] != y:
                out.append((b, y))
        return out

    def value(self, p: tuple[str, str], _stack: tuple = ()) -> int:
        assert p not in _stack, f"cyclic definition through {p}"
        stack = _stack + (p,)
        if p in self.defs:
            kind, c, args = self.defs[p]
            v = [self.value(a, stack) for a in args]
            res = {
                "const": lambda: c,
                "add_const": lambda: v[0] + c,
                "mul_const": lambda: v[0] * c,
                "add": lambda: v[0] + v[1],
                "sub": lambda: v[0] - v[1],
                "mul": lambda: v[0] * v[1],
            }[kind]()
            return res % self.mod if self.mod else res
        x, y = p
        total = 0
        for b in self.children[x]:
            per = 1 if CATEGORY_OF[b] == y else self.value((b, y), stack)
            total += self.value((x, b), stack) * per
        return total % self.mod if self.mod else total

    def needed(self) -> set[tuple[str, str]]:
        seen: set[tuple[str, str]] = set()
        todo = [self.question]
        while todo:
            p = todo.pop()
            if p not in seen:
                seen.add(p)
                todo.extend(self.deps(p))
        return seen

    def dag(self):
        """Labelled solution DAG: (labels, edges(parent, child, role), root)."""
        labels: dict[str, str] = {}
        edges: list[tuple[str, str, str]] = []
        for p in self.needed():
            nid = "%s|%s" % p
            if p in self.defs:
                kind, _, args = self.defs[p]
                labels[nid] = kind
                roles = ["left", "right"] if kind == "sub" else ["arg", "arg"]
                edges += [(nid, "%s|%s" % a, r) for r, a in zip(roles, args)]
            else:
                x, y = p
                deep = any(CATEGORY_OF[b] != y for b in self.children[x])
                labels[nid] = "abs_deep" if deep else "abs_direct"
                for b in self.children[x]:
                    if not deep:
                        edges.append((nid, f"{x}|{b}", "term"))
                    else:
                        pair = f"{nid}*{b}"
                        labels[pair] = "pair"
                        edges += [(nid, pair, "term"), (pair, f"{x}|{b}", "count"), (pair, f"{b}|{y}", "per")]
        return labels, edges, "%s|%s" % self.question


def exact_canonical_form(labels, edges, root):
    """Complete canonical form by brute force over orderings within an invariant partition."""
    nodes = sorted(labels)
    outs = collections.defaultdict(list)
    ins = collections.defaultdict(list)
    for a, b, r in edges:
        outs[a].append(r)
        ins[b].append(r)

    def key(n):
        return (labels[n], n == root, sorted(outs[n]), sorted(ins[n]))

    classes = [list(g) for _, g in itertools.groupby(sorted(nodes, key=key), key=key)]
    n_orders = 1
    for c in classes:
        for i in range(2, len(c) + 1):
            n_orders *= i
    assert n_orders <= 50_000, "graph too symmetric for brute force"
    best = None
    for combo in itertools.product(*(itertools.permutations(c) for c in classes)):
        order = [n for grp in combo for n in grp]
        idx = {n: i for i, n in enumerate(order)}
        form = (
            tuple(labels[n] for n in order),
            idx[root],
            tuple(sorted((idx[a], idx[b], r) for a, b, r in edges)),
        )
        if best is None or form < best:
            best = form
    return best


_EQ = re.compile(r"^([A-Za-z]) = ([A-Za-z]|\d+) ([-+*]) ([A-Za-z]|\d+) = (\d+) ([-+*]) (\d+) = (\d+)$")


def check_solution(prob: Problem, response: str) -> tuple[int, int]:
    """Re-check every step; return (answer, number of operations)."""
    lines = response.split("\n")
    m = re.fullmatch(r"Answer: (\d+)", lines[-1])
    assert m, lines[-1]
    var: dict[str, int] = {}
    defined: list[tuple[str, str]] = []
    n_ops = 0
    for line in lines[:-1]:
        m = re.fullmatch(r"Define (.+?)'s (.+?) as ([A-Za-z]); (.+)\.", line)
        assert m, line
        param, v = (m.group(1), m.group(2)), m.group(3)
        assert v not in var, f"letter {v} reused: {line}"
        parts = m.group(4).split("; ")
        assert parts[-1].startswith("so ") and all(not p.startswith("so ") for p in parts[:-1]), line
        parts[-1] = parts[-1][3:]
        for eq in parts:
            em = _EQ.match(eq)
            if em:
                lhs, x, op, y, nx, op2, ny, res = em.groups()
                assert op == op2 and lhs not in var, eq
                for sym, num in ((x, nx), (y, ny)):
                    expect = var[sym] if sym.isalpha() else int(sym)  # KeyError: undefined letter
                    assert expect == int(num), f"{sym} is {expect}, not {num}: {eq}"
                got = {"+": int(nx) + int(ny), "-": int(nx) - int(ny), "*": int(nx) * int(ny)}[op]
                got = got % prob.mod if prob.mod else got
                assert got == int(res), f"arithmetic: {eq} (gives {got})"
                var[lhs] = got
                n_ops += 1
                continue
            cm = re.fullmatch(rf"{v} = (\d+)", eq) or re.fullmatch(rf"{v} = ([A-Za-z]) = (\d+)", eq)
            assert cm and len(parts) == 1, f"unrecognised equation {eq!r} in {line!r}"
            if cm.lastindex == 2:
                assert var[cm.group(1)] == int(cm.group(2)), eq
                # a bare copy only happens for an abstract parameter with a single term
                assert param not in prob.defs and len(prob.deps(param)) == 1, line
            else:
                assert param in prob.defs and prob.defs[param][0] == "const", line
            var[v] = int(cm.group(cm.lastindex))
        assert v in var, f"step never computes {v}: {line}"
        assert 0 <= var[v] < P if prob.mod else var[v] > 0
        assert var[v] == prob.value(param), f"{param} is {prob.value(param)}, step says {var[v]}"
        defined.append(param)
        last = v
    assert len(defined) == len(set(defined)), "a parameter is computed twice"
    assert set(defined) == prob.needed(), "solution must compute exactly the needed parameters"
    assert defined[-1] == prob.question
    answer = int(lines[-1].split()[1])
    assert answer == var[last]
    return answer, n_ops


# ------------------------------------------------------------------ fixtures

OPS = range(2, 5)


@pytest.fixture(scope="module")
def task() -> IGSMTask:
    return IGSMTask()


@pytest.fixture(scope="module")
def train(task) -> list[Example]:
    return task.examples("train", 240, seed=0)


@pytest.fixture(scope="module")
def test(task) -> list[Example]:
    return task.examples("test", 150, seed=0)


# ------------------------------------------------------------------ correctness


def test_protocol(task):
    assert isinstance(task, TargetTask)
    assert task.name == "igsm"
    assert task.max_new_tokens > 0


@pytest.mark.parametrize("split", ["train", "test"])
def test_independent_evaluator_rederives_every_answer_and_step(split, train, test):
    exs = train if split == "train" else test
    ops_seen = collections.Counter()
    for ex in exs:
        prob = Problem(ex.prompt)
        truth = prob.value(prob.question)
        assert ex.answer == truth, ex.prompt
        answer, n_ops = check_solution(prob, ex.response)
        assert answer == truth
        assert n_ops == ex.meta["op"], ex.response
        assert len(prob.defs) == ex.meta["n_sentences"]
        assert len(prob.defs) - sum(1 for p in prob.needed() if p in prob.defs) == ex.meta["n_distractors"]
        assert ex.meta["n_distractors"] <= 2
        ops_seen[ex.meta["op"]] += 1
        assert ex.meta["split"] == split
    # ops cycle op_min..op_max, so every op is equally represented
    assert sorted(ops_seen) == list(OPS)
    assert max(ops_seen.values()) - min(ops_seen.values()) <= 1


def test_larger_op_solutions_also_check():
    for op in (1, 6, 9):
        for seed in range(15):
            p = generate_problem(seed * 100 + op, op)
            prob = Problem(p.prompt)
            assert p.answer == prob.value(prob.question)
            assert check_solution(prob, p.solution) == (p.answer, op)


@pytest.fixture(scope="module")
def add_task() -> IGSMTask:
    return IGSMTask(op_min=1, op_max=4, arithmetic="add")


@pytest.mark.parametrize("split", ["train", "test"])
def test_add_variant_rederived_independently(add_task, split):
    exs = add_task.examples(split, 120, seed=3)
    kinds = collections.Counter()
    for ex in exs:
        prob = Problem(ex.prompt)
        assert prob.mod is None and "modulo" not in ex.prompt
        truth = prob.value(prob.question)
        assert ex.answer == truth
        assert check_solution(prob, ex.response) == (truth, ex.meta["op"])
        kinds.update(k for k, _, _ in prob.defs.values())
        # two layers, so every abstract parameter is a plain sum: no product anywhere
        assert "*" not in ex.response
        for kind, c, _ in prob.defs.values():
            assert c is None or 1 <= c <= 9
        assert ex.meta["arithmetic"] == "add"
        # answers are sums of at most op + 1 constants of 1..9 (abstract sums may repeat one)
        assert 1 <= ex.answer
        assert add_task.score(ex, ex.response) == 1.0
        assert add_task.score(ex, f"Answer: {ex.answer + 23}") == 0.0  # no modulus
    assert set(kinds) == {"const", "add_const", "add"}


def test_add_variant_keeps_splits_disjoint(add_task):
    tr = add_task.examples("train", 200, seed=0)
    te = add_task.examples("test", 60, seed=0)
    forms = {split: {exact_canonical_form(*Problem(e.prompt).dag()) for e in exs} for split, exs in (("train", tr), ("test", te))}
    assert not forms["train"] & forms["test"]


def test_bad_arithmetic():
    with pytest.raises(ValueError, match="arithmetic must be one of"):
        IGSMTask(arithmetic="mod7")
    with pytest.raises(ValueError, match="arithmetic must be one of"):
        generate_problem(0, 2, arithmetic="")


def test_stop_regex_matches_only_a_finished_answer(task):
    rx = re.compile(task.stop_regex)
    assert rx.search("x = 3.\nAnswer: 12\n")
    assert rx.search("Answer: 12<")  # any non-digit ends the number
    assert not rx.search("x = 3.\nAnswer: 1")  # the number may still grow
    assert not rx.search("Answer: 12.")  # ... into a decimal
    assert rx.search("Answer: 12. Done").group(0) == "Answer: 12. "
    assert rx.search("Answer: 25.9\n").group(0) == "Answer: 25.9\n"
    assert rx.search("answer: 12\n")  # the extractor is case-insensitive, so is the stop rule
    assert not rx.search("Define p as q; so p = 4.\n")
    for ex in task.examples("test", 20, seed=1):
        m = rx.search(ex.response + "\n")
        assert m and extract_answer(ex.response[: m.end()]) == ex.answer


def test_determinism_and_prefix(task):
    a = task.examples("train", 30, seed=7)
    assert a == task.examples("train", 30, seed=7)
    assert a[:12] == task.examples("train", 12, seed=7)
    b = task.examples("train", 30, seed=8)
    assert sum(x.prompt == y.prompt for x, y in zip(a, b)) == 0
    assert len({e.uid for e in a}) == 30
    assert generate_problem(123, 3) == generate_problem(123, 3)
    assert generate_problem(123, 3) != generate_problem(124, 3)


def test_determinism_across_processes_and_hash_seeds(task):
    """No dependence on set/dict iteration order or PYTHONHASHSEED."""
    here = hashlib.sha256(
        "".join(e.prompt + e.response + e.meta["graph_hash"] for e in task.examples("test", 12, seed=3)).encode()
    ).hexdigest()
    code = (
        "import hashlib; from anchored_learning.tasks.igsm import IGSMTask;"
        "print(hashlib.sha256(''.join(e.prompt + e.response + e.meta['graph_hash'] "
        "for e in IGSMTask().examples('test', 12, seed=3)).encode()).hexdigest())"
    )
    for hs in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hs)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == here


# ------------------------------------------------------------------ train/test leakage


def test_no_dependency_graph_shared_between_splits(task, train, test):
    more_train = task.examples("train", 120, seed=1)
    more_test = task.examples("test", 60, seed=5)
    form_of = {}
    lib_hash_of_form = {}
    for ex in train + test + more_train + more_test:
        form = exact_canonical_form(*Problem(ex.prompt).dag())
        form_of[ex.uid + ex.meta["split"]] = form
        # the library hash is a function of the exact shape (invariant under renaming)
        assert lib_hash_of_form.setdefault(form, ex.meta["graph_hash"]) == ex.meta["graph_hash"]
    train_forms = {form_of[e.uid + "train"] for e in train + more_train}
    test_forms = {form_of[e.uid + "test"] for e in test + more_test}
    assert train_forms.isdisjoint(test_forms)
    # the check has teeth: shapes do repeat, and the test split is not one or two shapes
    assert len(train_forms) < len(train) + len(more_train)
    assert len(test_forms) >= 40


def test_split_is_needed_raw_generator_shares_shapes():
    """Without the hash split, independent draws share graph shapes (so the split matters)."""
    a = {exact_canonical_form(*Problem(generate_problem(s, 2).prompt).dag()) for s in range(150)}
    b = {exact_canonical_form(*Problem(generate_problem(10_000 + s, 2).prompt).dag()) for s in range(150)}
    assert a & b


# ------------------------------------------------------------------ answer distribution


def test_answers_uniform_chi_square():
    counts = collections.Counter()
    n = 1610  # 70 per value; without the uniformising step chi2 is ~175 here
    for i in range(n):
        counts[generate_problem(50_000 + i, 2 + i % 3).answer] += 1
    assert set(counts) <= set(range(P))
    expected = n / P
    chi2 = sum((counts[k] - expected) ** 2 / expected for k in range(P))
    assert chi2 < 48.27, (chi2, sorted(counts.items()))  # 22 dof, p = 0.001


def test_test_split_answers_cover_range(test):
    counts = collections.Counter(e.answer for e in test)
    assert len(counts) >= 20 and max(counts.values()) <= 20


# ------------------------------------------------------------------ scoring


@pytest.mark.parametrize(
    "prediction,expected",
    [
        ("Define X's Y as p; so p = 5.\nAnswer: 5", 1.0),
        ("Answer: 5", 1.0),
        ("Answer: 6", 0.0),
        ("so the result is 5.\nAnswer: 5.", 1.0),
        ("Answer:5", 1.0),
        ("answer: 5", 1.0),
        ("**Answer: 5**", 1.0),
        ("Answer: 5\nThe number of each Zebra's Rib Bone equals 11. Answer: 11", 1.0),
        ("Answer: 11\nWait, Answer: 5", 0.0),
        ("p = 3 + 2 = 5", 1.0),
        ("p = 3 + 2 = 5, so maybe 7", 0.0),
        ("p = 3-5", 1.0),
        ("p = 12 -18", 1.0),
        ("I do not know.", 0.0),
        ("", 0.0),
        ("Answer: 28", 1.0),
        ("Answer: 27", 0.0),
        ("Answer: -18", 1.0),
        ("Answer: 52", 0.0),
    ],
)
def test_score(task, prediction, expected):
    ex = Example(prompt="", response="Answer: 5", answer=5)
    assert task.score(ex, prediction) == expected


def test_gold_responses_score_one_and_wrong_zero(task, test):
    for ex in test[:50]:
        assert task.score(ex, ex.response) == 1.0
        wrong = ex.response.rsplit("Answer: ", 1)[0] + f"Answer: {(ex.answer + 1) % P}"
        assert task.score(ex, wrong) == 0.0


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="Aa"), max_size=40), st.integers(0, 22), st.text(max_size=40))
def test_extract_answer_prefers_answer_line(prefix, n, suffix):
    assert extract_answer(f"{prefix}\nAnswer: {n}\n{suffix}") == n


@pytest.mark.parametrize(
    "text,want",
    [
        ("Answer: 25.9", None),
        ("Answer: 25.0", 25),
        ("Answer: 25.", 25),
        ("Answer: -3.50\nso 7", None),
        ("Answer: 7. Then 8", 7),
        ("so 4.5 and 6", 6),
        ("so x = 25.9", None),
        ("A = 5.\nB = 7.", 7),
        ("12-5", 5),
        ("Answer: 12345678901234567890.000", 12345678901234567890),
    ],
)
def test_extract_answer_decimals(text, want):
    assert extract_answer(text) == want


def test_decimal_answer_does_not_score_as_its_integer_part():
    task = IGSMTask(op_min=2, op_max=2, arithmetic="add")
    ex = task.examples("test", 1, seed=0)[0]
    assert task.score(ex, f"Answer: {ex.answer}.9") == 0.0
    assert task.score(ex, f"Answer: {ex.answer}.0") == 1.0


def test_max_new_tokens_covers_gold(task, train):
    # pessimistic token count: every word, every digit and every symbol is a token
    longest = max(len(re.findall(r"[A-Za-z]+|\d|[^\sA-Za-z\d]", e.response)) for e in train)
    assert longest <= task.max_new_tokens


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"op_min": 5, "op_max": 3}, "op_min .5. must be <= op_max .3."),
        ({"op_min": 0}, "op must be >= 1"),
        ({"op_min": 1, "op_max": 99}, "op must be <= 15"),
        ({"max_distractors": -1}, "max_distractors must be >= 0"),
        ({"test_percent": 0}, "test_percent must be in 1..99"),
    ],
)
def test_bad_config(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        IGSMTask(**kwargs)


def test_bad_calls(task):
    with pytest.raises(ValueError, match="unknown split 'dev'; use 'train' or 'test'"):
        task.examples("dev", 3)
    with pytest.raises(ValueError, match="n must be >= 0"):
        task.examples("train", -1)
    with pytest.raises(ValueError, match="op must be >= 1"):
        generate_problem(0, 0)
    assert task.examples("test", 0) == []
