"""The frontier study's statistics: geometry against brute force, the bootstrap against the
per-seed metrics, and the report on a synthetic run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anchored_learning.evaluation.metrics import compare
from anchored_learning.experiment.frontier import (
    bootstrap_points,
    degradation_at_gain,
    frontier_curve,
    frontier_statistics,
    gain_at_degradation,
    hypervolume,
    load_frontier_evals,
    method_of,
)
from anchored_learning.experiment.frontier_report import _verdict, write_frontier_report
from anchored_learning.tables import pareto_frontier


def _families(labels):
    """The families of the labels the tests use, as the experiment records them (the variant's method)."""
    return {lab: lab.split("(")[0] for lab in labels}


def test_method_of_reads_the_recorded_method():
    assert method_of({"meta": {"method": "sft"}, "results": {}}) == "sft"
    with pytest.raises(ValueError, match=r"x\.json does not record the method that made it"):
        method_of({"meta": {}, "results": {}}, "x.json")


def test_frontier_curve_is_the_brute_force_pareto_set():
    rng = np.random.default_rng(0)
    for _ in range(50):
        pts = [tuple(p) for p in np.round(rng.normal(5, 5, size=(8, 2)), 1)]
        curve = frontier_curve(pts, include_origin=False)
        brute = {pts[i] for i in pareto_frontier(pts)}
        assert {tuple(p) for p in curve} == brute
        assert np.all(np.diff(curve[:, 1]) > 0) and np.all(np.diff(curve[:, 0]) > 0)  # both rise along it
    # the base model at the origin joins (and may dominate) a family's points
    assert frontier_curve([(5.0, -1.0)]).tolist() == [[0.0, 0.0]]
    assert frontier_curve([(-1.0, 2.0)]).tolist() == [[-1.0, 2.0]]


def test_matched_gain_and_degradation_closed_form():
    curve = frontier_curve([(10.0, 10.0), (20.0, 20.0), (30.0, 15.0)])  # (30, 15) is dominated
    assert curve.tolist() == [[0.0, 0.0], [10.0, 10.0], [20.0, 20.0]]
    assert degradation_at_gain(curve, 15.0) == pytest.approx(15.0)
    assert degradation_at_gain(curve, 5.0) == pytest.approx(5.0)
    assert degradation_at_gain(curve, -3.0) == 0.0  # below the lowest gain: the lowest point's degradation
    assert np.isnan(degradation_at_gain(curve, 20.5))  # SFT never gains that much
    assert gain_at_degradation(curve, 5.0) == pytest.approx(5.0)
    assert gain_at_degradation(curve, 50.0) == 20.0  # beyond SFT's worst frontier run: its best gain
    assert np.isnan(gain_at_degradation(curve, -1.0))  # SFT never forgets that little


def test_hypervolume_against_a_grid_count():
    rng = np.random.default_rng(1)
    for _ in range(10):
        pts = [tuple(p) for p in rng.uniform(-5, 20, size=(5, 2))]
        ref = 25.0
        h = 0.01
        ds = np.arange(-10, ref, h) + h / 2
        gs = np.arange(0, 25, h) + h / 2
        D, G = np.meshgrid(ds, gs)
        covered = np.zeros_like(D, dtype=bool)
        for d, g in pts:
            covered |= (d <= D) & (D <= ref) & (G <= g)
        assert hypervolume(pts, ref) == pytest.approx(covered.sum() * h * h, rel=2e-3, abs=0.05)
    assert hypervolume([(2.0, 10.0)], 12.0) == pytest.approx(100.0)
    assert hypervolume([(2.0, 10.0), (7.0, 20.0)], 12.0) == pytest.approx(5 * 10 + 5 * 20)


def _suite(items, uids=None, weights=None, hib=True):
    r = {
        "primary": float(np.mean(items)),
        "items": [float(x) for x in items],
        "uids": uids or [f"u{i}" for i in range(len(items))],
    }
    if weights is not None:
        r["weights"] = [int(x) for x in weights]
        r["primary"] = float(np.dot(items, weights) / np.sum(weights))
    r["higher_is_better"] = hib
    return r


def _evals(rng, shift_t, shift_h, nll_shift):
    """One seed's evaluations: base and two runs on a target (0/1), a held-out MC suite and an NLL suite."""
    t = rng.integers(0, 2, 30).astype(float)
    h = rng.integers(0, 2, 40).astype(float)
    nll = rng.uniform(2, 4, 20)
    w = rng.integers(10, 100, 20)
    h[:5] = 1.0  # a base score above 0
    out = {"base": {"results": {"t": _suite(t), "mc": _suite(h), "nll": _suite(nll, weights=w, hib=False)}}}
    for lab, st, sh, sn in zip(["sft", "anchored"], shift_t, shift_h, nll_shift):
        tt = np.clip(t + (rng.uniform(size=30) < st), 0, 1)
        hh = np.where(rng.uniform(size=40) < sh, 0.0, h)
        out[lab] = {"results": {"t": _suite(tt), "mc": _suite(hh), "nll": _suite(nll + sn, weights=w, hib=False)}}
    return out


def test_bootstrap_full_sample_is_the_mean_over_seeds_of_compare():
    rng = np.random.default_rng(3)
    evals = {0: _evals(rng, (0.3, 0.2), (0.2, 0.05), (0.3, 0.1)), 1: _evals(rng, (0.4, 0.3), (0.3, 0.1), (0.2, 0.05))}
    gain, deg = bootstrap_points(evals, ["sft", "anchored"], "t", ["mc", "nll"], n_boot=200)
    assert gain.shape == deg.shape == (2, 201)
    for m, lab in enumerate(["sft", "anchored"]):
        per = [compare(evals[s]["base"], evals[s][lab], targets=["t"]) for s in (0, 1)]
        assert gain[m, 0] == pytest.approx(np.mean([c["gain"]["t"]["points"] for c in per]))
        assert deg[m, 0] == pytest.approx(np.mean([c["mean_degradation"]["percent"] for c in per]))
        assert np.all(np.isfinite(gain[m])) and gain[m, 1:].std() > 0


def test_bootstrap_resamples_seeds():
    """Runs that differ from the base by a constant per seed: every replicate is a mean of the
    per-seed values over a draw of seeds with replacement, whatever items are drawn."""
    evals = {}
    for s, delta in enumerate([0.1, 0.4]):
        t = np.full(10, 0.2)
        evals[s] = {
            "base": {"results": {"t": _suite(t), "mc": _suite(np.full(10, 0.5))}},
            "run": {"results": {"t": _suite(t + delta), "mc": _suite(np.full(10, 0.5))}},
        }
    gain, deg = bootstrap_points(evals, ["run"], "t", ["mc"], n_boot=300)
    assert gain[0, 0] == pytest.approx(25.0)
    assert set(np.round(gain[0, 1:], 6)) == {10.0, 25.0, 40.0}
    assert np.all(deg == 0)


def test_bootstrap_in_the_suites_own_units_for_drift():
    """relative=False: a drift suite (base KL(p0 || p0) = 0, lower is better) gives each run's
    token-weighted mean KL in nats per token; relative degradation would divide by the base's 0."""
    w = np.array([3, 1, 2, 4])
    kl = {"sft": np.array([0.1, 0.5, 0.2, 0.3]), "anchored": np.array([0.0, 0.2, 0.1, 0.1])}
    t = np.array([0.0, 1.0, 0.0, 1.0])
    drift = lambda x: _suite(x, weights=w, hib=False)  # noqa: E731
    ev = {"base": {"results": {"t": _suite(t), "drift": drift(np.zeros(4))}}}
    for lab, x in kl.items():
        ev[lab] = {"results": {"t": _suite(np.ones(4)), "drift": drift(x)}}
    gain, d = bootstrap_points({0: ev}, ["sft", "anchored"], "t", ["drift"], n_boot=50, relative=False)
    for m, lab in enumerate(["sft", "anchored"]):
        assert d[m, 0] == pytest.approx(np.dot(kl[lab], w) / w.sum())  # ratio of sums, as the suite's primary
        assert gain[m, 0] == pytest.approx(50.0)
    assert np.all(d[1, 1:] <= d[0, 1:])  # paired: anchored's KL is below SFT's on every token
    with pytest.raises(ValueError, match="scores 0 on 'drift'; relative degradation is undefined"):
        bootstrap_points({0: ev}, ["sft"], "t", ["drift"], n_boot=10)


def test_bootstrap_refuses_misaligned_items():
    rng = np.random.default_rng(0)
    ev = {0: _evals(rng, (0.3, 0.2), (0.2, 0.05), (0.3, 0.1))}
    ev[0]["sft"]["results"]["mc"]["uids"] = ["x"] * 40
    with pytest.raises(ValueError, match="not the base model's"):
        bootstrap_points(ev, ["sft"], "t", ["mc"], n_boot=10)
    with pytest.raises(ValueError, match="no 'mc'"):
        bootstrap_points({0: {"base": ev[0]["base"], "x": {"results": {"t": ev[0]["base"]["results"]["t"]}}}}, ["x"], "t", ["mc"])


def test_frontier_statistics_closed_form():
    labels = ["sft", "sft(learning_rate=1e-4)", "anchored", "wise_ft(w=0.5)"]
    # full sample and two identical replicates (so every interval is the point)
    g = np.array([[20.0] * 3, [10.0] * 3, [15.0] * 3, [25.0] * 3])
    d = np.array([[20.0] * 3, [10.0] * 3, [5.0] * 3, [30.0] * 3])
    st = frontier_statistics(labels, g, d, _families(labels))
    a = next(p for p in st["points"] if p["label"] == "anchored")
    assert a["degradation_at_matched_gain"]["value"] == pytest.approx(5.0 - 15.0)
    assert a["gain_at_matched_degradation"]["value"] == pytest.approx(15.0 - 5.0)  # SFT's frontier: (0,0)-(10,10)
    assert a["degradation_at_matched_gain"]["ci"] == [pytest.approx(-10.0)] * 2
    w = next(p for p in st["points"] if p["label"] == "wise_ft(w=0.5)")
    assert w["degradation_at_matched_gain"]["value"] is None and w["degradation_at_matched_gain"]["defined"] == 0.0
    assert w["gain_at_matched_degradation"]["value"] == pytest.approx(25.0 - 20.0)
    assert a["on_frontier"] and a["on_family_frontier"]
    ref = st["ref_degradation"]
    assert ref == pytest.approx(30.0 + 0.1 * 30.0)
    assert st["families"]["sft"]["hypervolume"]["value"] == pytest.approx(hypervolume([(20, 20), (10, 10)], ref))
    assert st["families"]["anchored"]["hypervolume_minus_reference"]["value"] == pytest.approx(
        hypervolume([(5, 15)], ref) - hypervolume([(20, 20), (10, 10)], ref)
    )
    assert st["families"]["sft"]["frontier"] == ["sft", "sft(learning_rate=1e-4)"]
    assert st["families"]["sft"]["curve"] == [[0.0, 0.0], [10.0, 10.0], [20.0, 20.0]]
    assert _verdict(st, "t").endswith(
        "-10.0 [-10.0, -10.0] percentage points (negative = less forgetting): better than tuned SFT."
    )
    # anchored above SFT's best gain: the verdict turns to the gain at matched degradation
    g2 = g.copy()
    g2[2] = [30.0, 30.0, 3.0]  # one replicate with less gain than SFT at that degradation
    v = _verdict(frontier_statistics(labels, g2, d, _families(labels)), "t")
    assert "above every SFT run's point estimate" in v and "not distinguishable" in v
    # paired differences to SFT's highest-gain run (the reference 'sft': gain 20, degradation 20)
    vs = a["vs_highest_gain_reference"]
    assert vs["label"] == "sft"
    assert vs["gain_difference"]["value"] == pytest.approx(15.0 - 20.0)
    assert vs["degradation_difference"]["ci"] == [pytest.approx(5.0 - 20.0)] * 2
    # beyond SFT's range both ways (more gain, less forgetting than the base): the verdict uses them
    g3, d3 = g.copy(), d.copy()
    g3[2], d3[2] = [30.0, 31.0, 29.0], [-1.0, -2.0, 1.0]  # intervals: 2.5/97.5 percentiles of the 2 replicates
    v = _verdict(frontier_statistics(labels, g3, d3, _families(labels)), "t")
    assert v.endswith(
        "against SFT's highest-gain run sft it gains +10.0 [+9.1, +10.9] points more and forgets -21.0 [-21.9, -19.1] "
        "percentage points more (paired; better on both)."
    ), v
    with pytest.raises(ValueError, match="no run of the 'sft' family"):
        frontier_statistics(["anchored"], g[:1], d[:1], {"anchored": "anchored"})


def test_write_frontier_report_on_a_run_folder(tmp_path):
    rng = np.random.default_rng(5)
    for s in (0, 1, 2):
        ev = _evals(rng, (0.3, 0.3), (0.3, 0.02), (0.4, 0.02))
        ev["anchored(anchor_alpha=0.25)"] = ev["anchored"]
        if s == 2:
            del ev["anchored(anchor_alpha=0.25)"]  # unfinished in one seed: left out, named
        (tmp_path / f"seed-{s}" / "evals").mkdir(parents=True)
        (tmp_path / f"seed-{s}" / "config.json").write_text(json.dumps({"task": "t", "heldout": ["mc", "nll"], "seed": s}))
        for lab, e in ev.items():
            meta = {} if lab == "base" else {"method": lab.split("(")[0]}
            (tmp_path / f"seed-{s}" / "evals" / f"{lab}.json").write_text(json.dumps({**e, "meta": meta}))
        final = tmp_path / f"seed-{s}" / "models" / "anchored" / "final"
        final.mkdir(parents=True)
        hist = [{"outer_iteration": 0, "kl_snapshot_anchor": 0.3, "alpha_kl_snapshot_reference": 0.5}]
        log = [{"epoch": 0.5, "loss": 1.0}, {"epoch": 1.0, "loss": 0.5}]
        (final / ".complete").write_text(json.dumps({"log_history": log, "anchor_history": hist}))
    res = write_frontier_report(tmp_path, n_boot=100)
    assert res["seeds"] == [0, 1, 2] and res["incomplete"] == ["anchored(anchor_alpha=0.25)"]
    assert res["drift_view"] is None  # no drift suite in these evaluations: no drift section
    assert "## Drift view" not in (tmp_path / "frontier.md").read_text()
    assert [p["label"] for p in res["points"]] == ["sft", "anchored"]
    for f in ("frontier.json", "frontier.md", "frontier.png", "training_curves.png", "anchor_bound.png"):
        assert (tmp_path / f).stat().st_size > 0
    assert len(res["anchor_bound"]) == 3 and all(r["holds"] for r in res["anchor_bound"])
    md = (tmp_path / "frontier.md").read_text()
    assert res["verdict"] in md and "anchored(anchor_alpha=0.25)" in md
    assert json.loads((tmp_path / "frontier.json").read_text())["verdict"] == res["verdict"]
    # two seeds only: the unfinished run joins
    assert [p["label"] for p in write_frontier_report(tmp_path, seeds=[0, 1], n_boot=50)["points"]] == [
        "sft",
        "anchored",
        "anchored(anchor_alpha=0.25)",
    ]
    # an exported copy (scripts/export_run.py: evals and train_log_*.json, no weights) gives the same report
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_run", Path(__file__).parents[1] / "scripts" / "export_run.py")
    export_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_run)
    export_run.export(tmp_path, tmp_path / "exported")
    again = write_frontier_report(tmp_path / "exported", seeds=[0, 1], n_boot=50)
    assert json.loads((tmp_path / "frontier.json").read_text())["points"] == again["points"]
    assert len(again["anchor_bound"]) == 2 and (tmp_path / "exported" / "training_curves.png").exists()
    with pytest.raises(ValueError, match=r"no seed-7 folder; seeds present: \[0, 1, 2\] \(report those with --seeds 0,1,2\)"):
        load_frontier_evals(tmp_path, seeds=[7])
    with pytest.raises(ValueError, match="no evaluation of the base model"):
        load_frontier_evals(tmp_path / "seed-0" / "models")
    with pytest.raises(ValueError, match="holds a 't' study, not 'medcalc': drop --task"):
        write_frontier_report(tmp_path, seeds=[0, 1], n_boot=50, task="medcalc")
    with pytest.raises(ValueError, match="nope does not exist: give the study's folder with -o"):
        load_frontier_evals(tmp_path / "nope")
    cut = tmp_path / "exported" / "seed-1" / "evals" / "sft.json"
    cut.write_text(cut.read_text()[:200])  # a file cut short: named, not a bare JSON error
    with pytest.raises(ValueError, match=r"seed-1/evals/sft.json is not valid JSON \(.*\): it was cut short"):
        load_frontier_evals(tmp_path / "exported", seeds=[0, 1])


def test_report_drift_view_closed_form(tmp_path):
    """Runs whose every item scores the same (so every resample is the full sample): the drift view
    places anchored (gain 60, KL 0.3) against SFT's frontier (0, 0) - (0.1, 40) - (0.4, 100): SFT
    needs KL 0.1 + 20 / 60 * 0.3 = 0.2 for gain 60, so anchored drifts 0.1 nats per token more."""
    runs = {"base": (0.0, 0.0), "sft": (1.0, 0.4), "sft(learning_rate=1e-4)": (0.4, 0.1), "anchored": (0.6, 0.3)}
    for s in (0, 1):
        (tmp_path / f"seed-{s}" / "evals").mkdir(parents=True)
        (tmp_path / f"seed-{s}" / "config.json").write_text(json.dumps({"task": "t", "heldout": ["mc"], "seed": s}))
        for lab, (score, kl) in runs.items():
            results = {
                "t": _suite(np.full(10, score)),
                "mc": _suite(np.full(20, 0.5)),
                "drift": _suite(np.full(8, kl), weights=np.arange(1, 9), hib=False),
            }
            meta = {} if lab == "base" else {"method": lab.split("(")[0]}
            (tmp_path / f"seed-{s}" / "evals" / f"{lab}.json").write_text(json.dumps({"results": results, "meta": meta}))
    res = write_frontier_report(tmp_path, n_boot=50)
    view = res["drift_view"]
    a = next(p for p in view["points"] if p["label"] == "anchored")
    assert a["degradation"]["value"] == pytest.approx(0.3) and a["gain"]["value"] == pytest.approx(60.0)
    assert a["degradation_at_matched_gain"]["value"] == pytest.approx(0.3 - 0.2)
    assert view["n_items"] == 8
    assert view["verdict"] == (
        "t: anchored's drift KL at SFT-matched gain differs from SFT's frontier by +0.100 [+0.100, +0.100] nats per "
        "token (negative = a smaller step): worse than tuned SFT."
    )
    md = (tmp_path / "frontier.md").read_text()
    assert (
        "## Drift view" in md and view["verdict"] in md and "| anchored *+ | +60.0 [+60.0, +60.0] | 0.300 [0.300, 0.300] |" in md
    )
    # the suite's own verdict is unchanged by the drift view (degradation 0 everywhere)
    assert res["points"][0]["degradation"]["value"] == pytest.approx(0.0)


def test_terminal_summaries_fit_80_columns():
    from anchored_learning.experiment.run_commands import frontier_summary
    from anchored_learning.tables import short_label, summary_table, text_table

    assert short_label("sft(learning_rate=1e-4,num_train_epochs=3)") == "sft(lr=1e-4,ep=3)"
    rows = [
        {"label": "base", "gain": 0.0, "gain_ci": [0.0, 0.0], "degradation": 0.0, "degradation_ci": [0.0, 0.0]},
        {"label": "anchored(outer_iterations=1,inner_epochs=3)", "gain": 25.0, "gain_ci": [15.6, 35.9],
         "degradation": -12.25, "degradation_ci": [-18.4, -11.3]},
        {"label": "sft", "gain": 19.5, "gain_sd": 9.9, "degradation": 19.4, "degradation_sd": 1.0},
        {"label": "x", "gain": None, "degradation": 3.0},
    ]  # fmt: skip
    text = summary_table(rows)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "anchored(T=1,K=3)" in text and "+25.0 [+15.6, +35.9]" in text and "-12.2 [-18.4, -11.3]" in text
    assert "+19.5 ± 9.9" in text and "n/a" in text
    narrow = text_table(["run", "a", "b"], [["a" * 90, "1" * 20, "2" * 20]], width=60)
    assert max(len(line) for line in narrow.splitlines()) <= 60 and "…" in narrow and "1" * 20 in narrow
    est = {"value": 1.0, "ci": [0.5, 1.5], "defined": 1.0}
    res = {
        "points": [
            {"label": "sft(learning_rate=3e-5,num_train_epochs=1)", "gain": est, "degradation": est,
             "degradation_at_matched_gain": None},
            {"label": "anchored(anchor_alpha=0.25)", "gain": est, "degradation": est,
             "degradation_at_matched_gain": {"value": -3.25, "ci": [-6.0, -1.0], "defined": 1.0}},
            {"label": "distill", "gain": est, "degradation": est,
             "degradation_at_matched_gain": {"value": None, "ci": None, "defined": 0.0}},
            {"label": "dft", "gain": est, "degradation": {"value": -0.04, "ci": None, "defined": 1.0},
             "degradation_at_matched_gain": {"value": -0.01, "ci": [-0.04, 2.0], "defined": 1.0}},
        ],
        "incomplete": ["lora"],
    }  # fmt: skip
    text = frontier_summary(res)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "-3.2 [-6.0, -1.0]" in text and "beyond SFT's range" in text
    assert "+0.0 [+0.0, +2.0]" in text and "-0.0" not in text  # no negative zeros
    assert text.splitlines()[-1] == "Not in every seed yet (left out): lora."
