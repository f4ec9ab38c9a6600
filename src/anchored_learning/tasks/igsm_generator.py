"""iGSM: synthetic grade-school math with a hidden dependency graph (our own generator).

This follows the *published description* of iGSM in Ye, Xu, Li and Allen-Zhu, "Physics of
Language Models: Part 2.1, Grade-School Math and the Hidden Reasoning Process"
(arXiv:2407.20311); no code from the paper's release is used.

Ingredients, as in the paper:

* **Structure graph.**  A few consecutive *layers* of one category chain (e.g. School ->
  Classroom -> Backpack -> Stationery), a handful of *items* per layer, and edges between items
  of adjacent layers.  Every edge ``(A, B)`` is an **instance parameter** "each A's B" (how many
  B one A has).
* **Abstract parameters.**  "each A's C" where ``C`` is a *category* of a lower layer: the total
  number of C-things inside one A, i.e. a sum over the structure graph
  (``sum_B  A's B * B's C``, or ``sum_B A's B`` when ``C`` is the next layer).
* **Dependency graph.**  Each instance parameter is defined by one sentence: a constant, or an
  expression (``+ const``, ``* const``, sum, difference or product) of other parameters,
  instance or abstract.  Definitions are acyclic.
* **Arithmetic modulo 23**; ``op`` = number of binary operations (+, -, *) needed to compute
  the asked parameter, counting each necessary parameter once.  ``op`` is the difficulty knob.
* **Solution** in the paper's style: one step per necessary parameter, in topological order,
  each step naming the parameter with a fresh letter, e.g. ``Define Central High's Dance
  Studio as p; so p = 17.`` and ``Define Film Studio's Backpack as B; R = p * q = 3 * 4 = 12;
  so B = R + s = 12 + 5 = 17.`` (each equation performs at most one operation), then
  ``Answer: N``.

Train/test separation uses a canonical hash of the *solution dependency graph* (the asked
parameter and everything it needs, labelled by operation type, with parameter/item names and
numbers removed): a problem goes to ``test`` iff its hash falls in the test buckets, so no
graph shape is ever shared between the splits, whatever the seeds.  The hash is computed by
colour refinement (Weisfeiler-Lehman) on the labelled DAG, which is invariant under renaming:
isomorphic graphs always get the same hash (non-isomorphic graphs may, very rarely, collide,
which only merges two shapes into one split and can never leak).

Answers are exactly uniform on ``0..22``: after the graph is built, one constant leaf on which
the answer depends bijectively is re-solved so the answer equals a uniformly drawn target
(problems with no such leaf are rejected).

``arithmetic="add"`` (not in the paper; our easier variant for models too small to learn mod-23
arithmetic from a few hundred examples): two-layer structures (abstract parameters are plain
sums), only "N more than" and "sum of" definitions, constants 1..9, no modulus, answers as drawn.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: all arithmetic is modulo this prime (as in the paper)
MOD = 23
#: largest supported ``op`` (variable letters and generation time grow with it)
OP_LIMIT = 15

#: Category chains: each is a tuple of layers ``(category name, item names)``, top layer first.
#: Item names are unique over all chains and never equal a category name.
CHAINS: tuple[tuple[tuple[str, tuple[str, ...]], ...], ...] = (
    (
        ("School", ("Central High", "Riverview High", "Oakwood Academy", "Maple Elementary", "Lincoln Middle")),
        ("Classroom", ("Dance Studio", "Film Studio", "Science Lab", "Art Room", "Music Room")),
        ("Backpack", ("School Daypack", "Messenger Backpack", "Hiking Pack", "Sling Bag", "Rolling Backpack")),
        ("Stationery", ("Pencil", "Marker", "Eraser", "Notebook", "Ruler")),
    ),
    (
        ("District", ("Harbor District", "Old Town", "Greenfield", "Northgate", "Westbrook")),
        ("Building", ("Library", "Hospital", "Museum", "Office Tower", "Apartment Block")),
        ("Room", ("Lobby", "Kitchen", "Storage Room", "Conference Room", "Lounge")),
        ("Furniture", ("Armchair", "Bookshelf", "Desk", "Sofa", "Cabinet")),
    ),
    (
        ("Zoo", ("Riverside Zoo", "Sunset Zoo", "Lakeside Zoo", "Hillcrest Zoo", "Pinewood Zoo")),
        ("Enclosure", ("Reptile House", "Aviary", "Savanna Exhibit", "Penguin Pool", "Monkey Island")),
        ("Animal", ("Zebra", "Parrot", "Turtle", "Lemur", "Flamingo")),
        ("Bone", ("Skull Bone", "Rib Bone", "Femur", "Spine Bone", "Jaw Bone")),
    ),
    (
        ("Supermarket", ("FreshMart", "Green Grocer", "ValueStore", "Corner Market", "Sunrise Foods")),
        ("Aisle", ("Bakery Aisle", "Dairy Aisle", "Snack Aisle", "Produce Aisle", "Frozen Aisle")),
        ("Product", ("Bread Loaf", "Yogurt Cup", "Cracker Box", "Apple Bag", "Pizza Box")),
        ("Ingredient", ("Flour", "Sugar", "Salt", "Butter", "Yeast")),
    ),
)

INSTRUCTION = 'Solve the problem step by step, doing all arithmetic modulo 23, and end with a line "Answer: <number>".'
#: instruction of the ``arithmetic="add"`` variant (plain integers, no modulus)
INSTRUCTION_ADD = 'Solve the problem step by step and end with a line "Answer: <number>".'
#: ``arithmetic`` choices: "mod23" is the paper's; "add" is an easier variant (see IGSMTask)
ARITHMETIC = ("mod23", "add")
#: constants of the "add" variant are drawn from 1..ADD_CONST_MAX
ADD_CONST_MAX = 9
# Definition kinds of instance parameters -> number of binary operations they perform.
_LOCAL_OPS = {"const": 0, "add_const": 1, "mul_const": 1, "add": 1, "sub": 1, "mul": 1}
_EXPR_KINDS = ("add_const", "mul_const", "add", "sub", "mul")
_P_CONST = 0.35
_LETTERS = string.ascii_uppercase + string.ascii_lowercase
MAX_ATTEMPTS = 20000

# a parameter key: ("inst", item, child item) or ("abs", item, category)
Key = tuple[str, str, str]


@dataclass(frozen=True)
class IGSMProblem:
    """One generated iGSM problem.

    Attributes:
        prompt: instruction line, the shuffled definition sentences, and the question.
        solution: the step-by-step gold solution ending with ``Answer: N``.
        answer: the asked parameter's value, in ``0..22`` (``arithmetic="add"``: a positive integer).
        op: number of binary operations in the solution.
        graph_hash: canonical hash of the solution dependency graph (see module docstring).
        n_sentences: number of definition sentences (= instance parameters).
        n_distractors: definition sentences the solution does not need.
        chain: top category of the chain used (e.g. ``"School"``).
    """

    prompt: str
    solution: str
    answer: int
    op: int
    graph_hash: str
    n_sentences: int
    n_distractors: int
    chain: str


# ----------------------------------------------------------------------------- canonical hash


def canonical_graph_hash(labels: Mapping[str, str], edges: Iterable[tuple[str, str, str]], root: str) -> str:
    """Hash a labelled DAG up to renaming of its nodes.

    Args:
        labels: node id -> operation label (e.g. ``"const"``, ``"add"``, ``"sub"``).
        edges: ``(parent, child, role)`` triples; ``role`` distinguishes argument positions
            that matter (e.g. ``"left"``/``"right"`` of a difference) and is the same string for
            interchangeable arguments.
        root: the asked node (marked, so the same shape asked at another node differs).

    Returns:
        16 hex characters.  Isomorphic graphs (same labels, roles and root) always get the same
        value; computed by Weisfeiler-Lehman colour refinement over in- and out-edges.

    Raises:
        ValueError: an edge or the root names a node missing from ``labels``.
    """
    edges = list(edges)
    nodes = sorted(labels)
    if root not in labels:
        raise ValueError(f"root {root!r} is not a node; pass one of the keys of labels")
    out: dict[str, list[tuple[str, str]]] = {n: [] for n in nodes}
    inc: dict[str, list[tuple[str, str]]] = {n: [] for n in nodes}
    for parent, child, role in edges:
        if parent not in labels or child not in labels:
            raise ValueError(f"edge {(parent, child, role)!r} names a node missing from labels")
        out[parent].append((role, child))
        inc[child].append((role, parent))
    colour = {n: labels[n] + ("#root" if n == root else "") for n in nodes}
    for _ in range(len(nodes)):
        new = {}
        for n in nodes:
            down = sorted(f"{r}>{colour[c]}" for r, c in out[n])
            up = sorted(f"{r}<{colour[p]}" for r, p in inc[n])
            blob = colour[n] + "|" + ",".join(down) + "|" + ",".join(up)
            new[n] = hashlib.sha1(blob.encode()).hexdigest()
        colour = new
    blob = ";".join(sorted(colour.values())) + "@" + colour[root]
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def split_of_hash(graph_hash: str, test_percent: int = 20) -> str:
    """Return ``"test"`` if ``graph_hash`` falls in the test buckets, else ``"train"``.

    The bucket is ``int(graph_hash, 16) % 100``; buckets ``< test_percent`` are test.

    Raises:
        ValueError: ``test_percent`` not in 1..99, or ``graph_hash`` not hexadecimal.
    """
    if not 1 <= test_percent <= 99:
        raise ValueError(f"test_percent must be in 1..99, got {test_percent}")
    try:
        bucket = int(graph_hash, 16) % 100
    except ValueError:
        raise ValueError(f"graph_hash must be a hex string, got {graph_hash!r}") from None
    return "test" if bucket < test_percent else "train"


# ----------------------------------------------------------------------------- generation


class _Graph:
    """Structure graph + definitions of one candidate problem (internal)."""

    def __init__(self, rng: random.Random, op: int, arithmetic: str = "mod23") -> None:
        self.arithmetic = arithmetic
        self.mod: int | None = MOD if arithmetic == "mod23" else None
        self.chain_idx = rng.randrange(len(CHAINS))
        chain = CHAINS[self.chain_idx]
        # "add": two layers only, so abstract parameters are plain sums (no products)
        depth = 2 if arithmetic == "add" else rng.randint(2, 3 if op <= 4 else 4)
        start = rng.randint(0, len(chain) - depth)
        max_items = 2 if op <= 3 else 3
        self.layers: list[tuple[str, list[str]]] = []
        for level in range(depth):
            cat, items = chain[start + level]
            self.layers.append((cat, rng.sample(items, rng.randint(1, max_items))))
        self.layer_of: dict[str, int] = {}
        for level, (_, items) in enumerate(self.layers):
            for it in items:
                self.layer_of[it] = level
        self.cat_layer = {cat: level for level, (cat, _) in enumerate(self.layers)}
        edges: list[tuple[str, str]] = []
        for level in range(depth - 1):
            up, down = self.layers[level][1], self.layers[level + 1][1]
            layer_edges: list[tuple[str, str]] = []
            for d in down:
                for p in rng.sample(up, rng.randint(1, min(2, len(up)))):
                    layer_edges.append((p, d))
            for u in up:
                if not any(e[0] == u for e in layer_edges):
                    layer_edges.append((u, rng.choice(down)))
            edges.extend(layer_edges)
        self.edges = edges
        self.children: dict[str, list[str]] = {}
        for a, b in edges:
            self.children.setdefault(a, []).append(b)
        # abstract parameters: item a, category of any strictly lower layer
        self.abstract: list[Key] = []
        for a, level in self.layer_of.items():
            for cat, cl in self.cat_layer.items():
                if cl > level:
                    self.abstract.append(("abs", a, cat))
        self.abstract.sort(key=lambda k: (self.layer_of[k[1]], k[1], self.cat_layer[k[2]]))
        self.defs: dict[Key, tuple[str, tuple[Key, ...], int]] = {}
        self._terms: dict[Key, list[tuple[Key, Key | None]]] = {}

    # -- structure helpers
    def abs_terms(self, key: Key) -> list[tuple[Key, Key | None]]:
        """Terms of an abstract parameter: (instance param, abstract sub-param or None)."""
        if key not in self._terms:
            _, a, cat = key
            deep = self.cat_layer[cat] > self.layer_of[a] + 1
            self._terms[key] = [(("inst", a, b), ("abs", b, cat) if deep else None) for b in self.children[a]]
        return self._terms[key]

    def deps(self, key: Key) -> list[Key]:
        if key[0] == "inst":
            return list(self.defs[key][1])
        out: list[Key] = []
        for inst, sub in self.abs_terms(key):
            out.append(inst)
            if sub is not None:
                out.append(sub)
        return out

    def local_ops(self, key: Key) -> int:
        if key[0] == "inst":
            return _LOCAL_OPS[self.defs[key][0]]
        terms = self.abs_terms(key)
        mults = sum(1 for _, sub in terms if sub is not None)
        return mults + len(terms) - 1

    def closure(self, key: Key) -> list[Key]:
        """Necessary parameters of ``key`` in DFS post-order (a topological order)."""
        seen: set[Key] = set()
        order: list[Key] = []

        def visit(k: Key) -> None:
            if k in seen:
                return
            seen.add(k)
            for d in self.deps(k):
                visit(d)
            order.append(k)

        visit(key)
        return order

    def inst_expansion(self, key: Key) -> set[Key]:
        """Instance parameters an abstract parameter sums over (recursively)."""
        out: set[Key] = set()
        for inst, sub in self.abs_terms(key):
            out.add(inst)
            if sub is not None:
                out |= self.inst_expansion(sub)
        return out

    def evaluate(self, only: Key | None = None) -> dict[Key, int]:
        """Values (mod 23, or plain integers for "add") of every parameter, or only of ``only``
        and what it needs."""
        values: dict[Key, int] = {}

        def val(k: Key) -> int:
            if k in values:
                return values[k]
            if k[0] == "inst":
                kind, args, c = self.defs[k]
                x = [val(a) for a in args]
                v = {
                    "const": lambda: c,
                    "add_const": lambda: x[0] + c,
                    "mul_const": lambda: x[0] * c,
                    "add": lambda: x[0] + x[1],
                    "sub": lambda: x[0] - x[1],
                    "mul": lambda: x[0] * x[1],
                }[kind]()
            else:
                v = 0
                for inst, sub in self.abs_terms(k):
                    v += val(inst) * (val(sub) if sub is not None else 1)
            values[k] = v % self.mod if self.mod else v
            return values[k]

        for k in [only] if only is not None else list(self.defs) + self.abstract:
            val(k)
        return values

    # -- dependency graph
    def assign_definitions(self, rng: random.Random) -> None:
        params: list[Key] = [("inst", a, b) for a, b in self.edges]
        rng.shuffle(params)
        expansions = {k: self.inst_expansion(k) for k in self.abstract}
        defined: list[Key] = []
        defined_set: set[Key] = set()
        add_only = self.arithmetic == "add"
        for p in params:
            avail = defined + [k for k in self.abstract if expansions[k] <= defined_set]
            if not avail or rng.random() < _P_CONST:
                self.defs[p] = ("const", (), rng.randint(1, ADD_CONST_MAX) if add_only else rng.randrange(MOD))
            else:
                kinds = [
                    k for k in (("add_const", "add") if add_only else _EXPR_KINDS) if len(avail) >= 2 or k.endswith("_const")
                ]
                kind = rng.choice(kinds)
                if kind.endswith("_const"):
                    if add_only:
                        c = rng.randint(1, ADD_CONST_MAX)
                    else:
                        c = rng.randint(1, MOD - 1) if kind == "add_const" else rng.randint(2, MOD - 1)
                    self.defs[p] = (kind, (rng.choice(avail),), c)
                else:
                    self.defs[p] = (kind, tuple(rng.sample(avail, 2)), 0)
            defined.append(p)
            defined_set.add(p)

    def dag(self, question: Key) -> tuple[dict[str, str], list[tuple[str, str, str]], str]:
        """Labelled solution DAG of ``question`` (node ids are opaque strings)."""
        labels: dict[str, str] = {}
        edges: list[tuple[str, str, str]] = []

        def nid(k: Key) -> str:
            return "/".join(k)

        for k in self.closure(question):
            if k[0] == "inst":
                kind, args, _ = self.defs[k]
                labels[nid(k)] = kind
                roles = ("left", "right") if kind == "sub" else ("arg", "arg")
                for role, a in zip(roles, args):
                    edges.append((nid(k), nid(a), role))
            else:
                terms = self.abs_terms(k)
                deep = terms[0][1] is not None
                labels[nid(k)] = "abs_deep" if deep else "abs_direct"
                for inst, sub in terms:
                    if sub is None:
                        edges.append((nid(k), nid(inst), "term"))
                    else:
                        pair = nid(k) + "|" + inst[2]
                        labels[pair] = "pair"
                        edges.append((nid(k), pair, "term"))
                        edges.append((pair, nid(inst), "count"))
                        edges.append((pair, nid(sub), "per"))
        return labels, edges, nid(question)


def _phrase(k: Key) -> str:
    return f"each {k[1]}'s {k[2]}"


def _sentence(key: Key, kind: str, args: tuple[Key, ...], c: int) -> str:
    head = f"The number of {_phrase(key)} equals"
    if kind == "const":
        return f"{head} {c}."
    if kind == "add_const":
        return f"{head} {c} more than {_phrase(args[0])}."
    if kind == "mul_const":
        return f"{head} {c} times {_phrase(args[0])}."
    word = {"add": "sum", "sub": "difference", "mul": "product"}[kind]
    return f"{head} the {word} of {_phrase(args[0])} and {_phrase(args[1])}."


def _solution(g: _Graph, question: Key, values: dict[Key, int], rng: random.Random) -> tuple[str, int] | None:
    """Paper-style solution; returns (text, number of operations) or None if out of letters."""
    order = g.closure(question)
    n_inter = 0
    for k in order:
        if k[0] == "abs":
            terms = g.abs_terms(k)
            deep = terms[0][1] is not None
            n_inter += (len(terms) if deep and len(terms) > 1 else 0) + max(0, len(terms) - 2)
    if len(order) + n_inter > len(_LETTERS):
        return None
    letters = rng.sample(_LETTERS, len(order) + n_inter)
    name: dict[Key, str] = {}
    steps: list[str] = []
    n_ops = 0

    def eq(lhs: str, x: str, xv: int, sym: str, y: str, yv: int) -> tuple[str, int]:
        v = {"+": xv + yv, "-": xv - yv, "*": xv * yv}[sym]
        v = v % g.mod if g.mod else v
        return f"{lhs} = {x} {sym} {y} = {xv} {sym} {yv} = {v}", v

    for k in order:
        v = name[k] = letters.pop()
        head = f"Define {k[1]}'s {k[2]} as {v}; "
        if k[0] == "inst":
            kind, args, c = g.defs[k]
            if kind == "const":
                steps.append(f"{head}so {v} = {c}.")
                continue
            a = args[0]
            if kind in ("add_const", "mul_const"):
                sym = "+" if kind == "add_const" else "*"
                text, _ = eq(v, name[a], values[a], sym, str(c), c)
            else:
                b = args[1]
                sym = {"add": "+", "sub": "-", "mul": "*"}[kind]
                text, _ = eq(v, name[a], values[a], sym, name[b], values[b])
            n_ops += 1
            steps.append(f"{head}so {text}.")
            continue
        # abstract parameter: products (one per term when deep), then a running sum
        parts: list[str] = []
        terms = g.abs_terms(k)
        operands: list[tuple[str, int]] = []
        for inst, sub in terms:
            if sub is None:
                operands.append((name[inst], values[inst]))
            elif len(terms) == 1:
                text, _ = eq(v, name[inst], values[inst], "*", name[sub], values[sub])
                n_ops += 1
                parts.append(text)
            else:
                t = letters.pop()
                text, tv = eq(t, name[inst], values[inst], "*", name[sub], values[sub])
                n_ops += 1
                parts.append(text)
                operands.append((t, tv))
        if len(terms) == 1 and not parts:
            parts.append(f"{v} = {operands[0][0]} = {operands[0][1]}")
        elif operands:
            acc, acc_v = operands[0]
            for i, (o, ov) in enumerate(operands[1:], start=1):
                lhs = v if i == len(operands) - 1 else letters.pop()
                text, acc_v = eq(lhs, acc, acc_v, "+", o, ov)
                n_ops += 1
                parts.append(text)
                acc = lhs
        parts[-1] = "so " + parts[-1]
        steps.append(head + "; ".join(parts) + ".")
    steps.append(f"Answer: {values[question]}")
    return "\n".join(steps), n_ops


def try_generate(
    rng: random.Random,
    op: int,
    max_distractors: int,
    split: str | None = None,
    test_percent: int = 20,
    arithmetic: str = "mod23",
) -> IGSMProblem | None:
    """One attempt; None when the candidate is rejected (wrong op, split, or no uniform leaf)."""
    g = _Graph(rng, op, arithmetic)
    g.assign_definitions(rng)
    n_sent = len(g.edges)
    needs: dict[Key, frozenset[Key]] = {}

    def needed(k: Key) -> frozenset[Key]:
        if k not in needs:
            out = {k}
            for d in g.deps(k):
                out |= needed(d)
            needs[k] = frozenset(out)
        return needs[k]

    local = {k: g.local_ops(k) for k in list(g.defs) + g.abstract}
    candidates: list[Key] = []
    for k in sorted(g.defs) + g.abstract:
        if k[0] == "inst" and g.defs[k][0] == "const":
            continue
        clo = needed(k)
        if sum(local[x] for x in clo) != op:
            continue
        if n_sent - sum(1 for x in clo if x[0] == "inst") > max_distractors:
            continue
        candidates.append(k)
    if not candidates:
        return None
    question = rng.choice(candidates)
    clo = g.closure(question)
    # the graph shape does not depend on the constants: reject a wrong split early
    graph_hash = canonical_graph_hash(*g.dag(question))
    if split is not None and split_of_hash(graph_hash, test_percent) != split:
        return None
    # make the answer uniform: re-solve one constant leaf the answer depends on bijectively
    # ("add": no modulus, answers are sums of small constants and are left as drawn)
    leaves = [x for x in clo if x[0] == "inst" and g.defs[x][0] == "const"]
    rng.shuffle(leaves)
    target = rng.randrange(MOD)
    if g.mod:
        for leaf in leaves:
            kind, args, old = g.defs[leaf]
            preimage: dict[int, int] = {}
            for c in range(MOD):
                g.defs[leaf] = (kind, args, c)
                preimage.setdefault(g.evaluate(question)[question], c)
            if len(preimage) == MOD:
                g.defs[leaf] = (kind, args, preimage[target])
                break
            g.defs[leaf] = (kind, args, old)
        else:
            return None
    values = g.evaluate()
    sol = _solution(g, question, values, rng)
    if sol is None:
        return None
    solution, n_ops = sol
    assert n_ops == op, (n_ops, op)
    sentences = [_sentence(k, *g.defs[k]) for k in sorted(g.defs)]
    rng.shuffle(sentences)
    instruction = INSTRUCTION if g.mod else INSTRUCTION_ADD
    prompt = f"{instruction}\n{' '.join(sentences)}\nQuestion: What is the number of {_phrase(question)}?"
    return IGSMProblem(
        prompt=prompt,
        solution=solution,
        answer=values[question],
        op=op,
        graph_hash=graph_hash,
        n_sentences=n_sent,
        n_distractors=n_sent - sum(1 for x in clo if x[0] == "inst"),
        chain=CHAINS[g.chain_idx][0][0],
    )


def check_op(op: int) -> None:
    if isinstance(op, bool) or not isinstance(op, int):
        raise ValueError(f"op must be an int, got {op!r}")
    if op < 1:
        raise ValueError(f"op must be >= 1 (a problem needs at least one operation), got {op}")
    if op > OP_LIMIT:
        raise ValueError(f"op must be <= {OP_LIMIT} (OP_LIMIT), got {op}; use a smaller op")


def check_arithmetic(arithmetic: str) -> None:
    if arithmetic not in ARITHMETIC:
        raise ValueError(f"arithmetic must be one of {ARITHMETIC}, got {arithmetic!r}")


def generate_problem(rng: random.Random | int, op: int, max_distractors: int = 2, arithmetic: str = "mod23") -> IGSMProblem:
    """Generate one iGSM problem whose solution takes exactly ``op`` operations.

    Args:
        rng: a ``random.Random`` (advanced in place) or an int seed.  Global random state is
            never used, so equal seeds give equal problems.
        op: number of binary operations (+, -, *) the solution performs, 1..``OP_LIMIT``.
        max_distractors: at most this many definition sentences the solution does not need.
        arithmetic: "mod23" (the paper's) or "add" (see :class:`IGSMTask`).

    Returns:
        An :class:`IGSMProblem` (any split; see :class:`IGSMTask` for split assignment).

    Raises:
        ValueError: ``op`` outside 1..OP_LIMIT, ``max_distractors`` negative or an unknown
            ``arithmetic``.
        RuntimeError: no valid problem found after many attempts (should not happen for
            supported ``op``).
    """
    check_op(op)
    check_arithmetic(arithmetic)
    if max_distractors < 0:
        raise ValueError(f"max_distractors must be >= 0, got {max_distractors}")
    if not isinstance(rng, random.Random):
        rng = random.Random(rng)
    for _ in range(MAX_ATTEMPTS):
        out = try_generate(rng, op, max_distractors, arithmetic=arithmetic)
        if out is not None:
            return out
    raise RuntimeError(f"could not generate an iGSM problem with op={op}; try a smaller op")
