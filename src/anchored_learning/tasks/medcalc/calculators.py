"""The generator's calculators (:data:`CALCULATORS`): for each one, a sampler of plausible patient
parameters, a writer of the patient note, and the real implementation in the ``medcalc`` package
(medcalc-bench) that gives the ground truth and the step-by-step explanation.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Calculator:
    """One generator-backed calculator.

    Attributes:
        key: short name used in ``MedCalcTask(calculators=[...])`` (e.g. ``"bmi"``).
        calculator_id: the MedCalc-Bench calculator id.
        name: the MedCalc-Bench calculator name.
        output_type: normalised output type.
        module, function: where the real implementation lives in the ``medcalc`` package.
        sample: draws ``(calculator_input, note_facts)`` from a ``random.Random``.
        note: writes the patient note from the facts.
        question: the question asked (MedCalc-Bench wording).
    """

    key: str
    calculator_id: int
    name: str
    output_type: str
    module: str
    function: str
    sample: Callable[[random.Random], tuple[dict[str, Any], dict[str, Any]]]
    note: Callable[[dict[str, Any], random.Random], str]
    question: str

    def compute(self, params: dict[str, Any]) -> tuple[str, Any]:
        """Run the real ``medcalc`` calculator; returns ``(explanation, answer)``."""
        fn = getattr(importlib.import_module(f"medcalc.{self.module}"), self.function)
        result = fn(dict(params))
        return result["Explanation"], result["Answer"]


def _sex(rng: random.Random) -> str:
    return rng.choice(["Male", "Female"])


def _noun(sex: str) -> str:
    return "man" if sex == "Male" else "woman"


def _pro(sex: str) -> str:
    return "He" if sex == "Male" else "She"


def _fmt(x: float) -> str:
    return f"{x:g}"


_PRESENTATIONS = [
    "presents to the clinic for a routine follow-up visit",
    "is seen in the emergency department",
    "is admitted to the medical ward",
    "comes in for a pre-operative assessment",
    "presents with fatigue of two weeks' duration",
    "is evaluated in the outpatient clinic",
]


def _a(age: int) -> str:
    return "An" if str(age).startswith("8") or age in (11, 18) else "A"


def _opening(age: int, sex: str, rng: random.Random) -> str:
    return f"{_a(age)} {age}-year-old {_noun(sex)} {rng.choice(_PRESENTATIONS)}."


def _height(rng: random.Random, sex: str) -> tuple[float, str]:
    cm = rng.gauss(176 if sex == "Male" else 163, 7)
    cm = min(max(cm, 145), 200)
    if rng.random() < 0.25:
        return round(cm / 2.54), "in"
    return round(cm), "cm"


def _weight(rng: random.Random, height_m: float) -> tuple[float, str]:
    bmi = min(max(rng.gauss(26, 5), 16), 42)
    kg = bmi * height_m**2
    if rng.random() < 0.25:
        return round(kg / 0.453592), "lbs"
    return round(kg, 1), "kg"


def _height_m(h: tuple[float, str]) -> float:
    return h[0] / 100 if h[1] == "cm" else h[0] * 0.0254


def _sample_body(rng: random.Random) -> tuple[dict, dict]:
    sex = _sex(rng)
    age = rng.randint(18, 90)
    height = _height(rng, sex)
    weight = _weight(rng, _height_m(height))
    params = {"height": height, "weight": weight, "sex": sex, "age": (age, "years")}
    return params, {"age": age, "sex": sex, "height": height, "weight": weight}


def _body_note(f: dict, rng: random.Random) -> str:
    sbp = rng.randint(105, 150)
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} has no acute complaints. "
        f"Height is {_fmt(f['height'][0])} {f['height'][1]} and weight is "
        f"{_fmt(f['weight'][0])} {f['weight'][1]}. Blood pressure is {sbp}/{rng.randint(60, 90)} "
        f"mm Hg and heart rate is {rng.randint(58, 96)} beats per minute."
    )


def _sample_ibw(rng: random.Random) -> tuple[dict, dict]:
    params, facts = _sample_body(rng)
    return {"height": params["height"], "sex": params["sex"]}, facts


def _sample_map(rng: random.Random) -> tuple[dict, dict]:
    sbp = rng.randint(80, 200)
    dbp = rng.randint(40, min(sbp - 15, 120))
    sex, age = _sex(rng), rng.randint(18, 90)
    return (
        {"sys_bp": (float(sbp), "mm hg"), "dia_bp": (float(dbp), "mm hg")},
        {"age": age, "sex": sex, "sbp": sbp, "dbp": dbp},
    )


def _map_note(f: dict, rng: random.Random) -> str:
    complaint = rng.choice(["headache", "dizziness", "chest tightness", "palpitations", "shortness of breath"])
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} reports {complaint}. "
        f"Vital signs: blood pressure {f['sbp']}/{f['dbp']} mm Hg, heart rate "
        f"{rng.randint(55, 120)} beats per minute, respiratory rate {rng.randint(12, 24)} breaths "
        f"per minute, temperature {rng.uniform(36.2, 38.4):.1f} °C."
    )


def _sample_anion_gap(rng: random.Random) -> tuple[dict, dict]:
    while True:  # physiologically plausible: gap 3-32 mEq/L, chloride 85-120 mEq/L
        na = rng.randint(125, 150)
        hco3 = rng.randint(8, 32)
        cl = na - hco3 - rng.randint(3, 32)
        if 85 <= cl <= 120:
            break
    unit = rng.choice(["mEq/L", "mmol/L"])
    sex, age = _sex(rng), rng.randint(18, 90)
    return (
        {"sodium": (float(na), unit), "chloride": (float(cl), unit), "bicarbonate": (float(hco3), unit)},
        {"age": age, "sex": sex, "na": na, "cl": cl, "hco3": hco3, "unit": unit},
    )


def _anion_gap_note(f: dict, rng: random.Random) -> str:
    u = f["unit"]
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} reports nausea and poor oral "
        f"intake. Laboratory results: sodium {f['na']} {u}, potassium "
        f"{rng.uniform(3.2, 5.4):.1f} {u}, chloride {f['cl']} {u}, bicarbonate {f['hco3']} {u}, "
        f"BUN {rng.randint(8, 40)} mg/dL, creatinine {rng.uniform(0.6, 2.0):.1f} mg/dL, glucose "
        f"{rng.randint(80, 250)} mg/dL."
    )


def _sample_crcl(rng: random.Random) -> tuple[dict, dict]:
    params, facts = _sample_body(rng)
    creat = round(rng.uniform(0.5, 3.5), 2)
    params["creatinine"] = (creat, "mg/dL")
    facts["creatinine"] = creat
    return params, facts


def _crcl_note(f: dict, rng: random.Random) -> str:
    return (
        f"{_opening(f['age'], f['sex'], rng)} A medication dose adjustment is being considered. "
        f"Height is {_fmt(f['height'][0])} {f['height'][1]} and weight is "
        f"{_fmt(f['weight'][0])} {f['weight'][1]}. Serum creatinine is {_fmt(f['creatinine'])} "
        f"mg/dL and BUN is {rng.randint(8, 45)} mg/dL."
    )


_CHA2DS2_ITEMS = [
    ("chf", "congestive heart failure"),
    ("hypertension", "hypertension"),
    ("stroke", "a prior ischemic stroke"),
    ("tia", "a transient ischemic attack"),
    ("thromboembolism", "a prior pulmonary embolism"),
    ("vascular_disease", "a prior myocardial infarction"),
    ("diabetes", "type 2 diabetes mellitus"),
]


def _sample_cha2ds2(rng: random.Random) -> tuple[dict, dict]:
    sex, age = _sex(rng), rng.randint(40, 92)
    params: dict[str, Any] = {"age": (age, "years"), "sex": sex}
    for key, _ in _CHA2DS2_ITEMS:
        params[key] = rng.random() < 0.3
    return params, {"age": age, "sex": sex, **{k: params[k] for k, _ in _CHA2DS2_ITEMS}}


def _list_phrase(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _cha2ds2_note(f: dict, rng: random.Random) -> str:
    present = [label for key, label in _CHA2DS2_ITEMS if f[key]]
    absent = [label.replace("a prior ", "").replace("a ", "") for key, label in _CHA2DS2_ITEMS if not f[key]]
    text = (
        f"{_opening(f['age'], f['sex'], rng)} An ECG shows atrial fibrillation with a ventricular "
        f"rate of {rng.randint(80, 140)} beats per minute. "
    )
    if present:
        text += f"{_pro(f['sex'])} has a history of {_list_phrase(present)}. "
    if absent:
        text += f"There is no history of {_list_phrase(absent)}."
    return text.strip()


def _sample_curb65(rng: random.Random) -> tuple[dict, dict]:
    sex, age = _sex(rng), rng.randint(20, 95)
    sbp = rng.randint(75, 160)
    dbp = rng.randint(40, min(sbp - 15, 100))
    rr = rng.randint(12, 38)
    bun = rng.randint(6, 45)
    confusion = rng.random() < 0.3
    params = {
        "age": (age, "years"),
        "sys_bp": (float(sbp), "mm hg"),
        "dia_bp": (float(dbp), "mm hg"),
        "respiratory_rate": (float(rr), "breaths per minute"),
        "bun": (float(bun), "mg/dL"),
        "confusion": confusion,
    }
    return params, {"age": age, "sex": sex, "sbp": sbp, "dbp": dbp, "rr": rr, "bun": bun, "confusion": confusion}


def _curb65_note(f: dict, rng: random.Random) -> str:
    mental = "is confused and disoriented to time and place" if f["confusion"] else "is alert and fully oriented"
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} has had a productive cough and "
        f"fever for {rng.randint(2, 7)} days; chest radiography shows a right lower lobe "
        f"consolidation. On examination {_pro(f['sex']).lower()} {mental}. Blood pressure is "
        f"{f['sbp']}/{f['dbp']} mm Hg and respiratory rate is {f['rr']} breaths per minute. "
        f"BUN is {f['bun']} mg/dL."
    )


def _sample_bazett(rng: random.Random) -> tuple[dict, dict]:
    hr = rng.randint(45, 150)
    qt = rng.randint(300, 480)
    sex, age = _sex(rng), rng.randint(18, 90)
    return (
        {"heart_rate": (float(hr), "beats per minute"), "qt_interval": (float(qt), "msec")},
        {"age": age, "sex": sex, "hr": hr, "qt": qt},
    )


def _bazett_note(f: dict, rng: random.Random) -> str:
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} was recently started on a "
        f"macrolide antibiotic. A 12-lead ECG shows sinus rhythm at a heart rate of {f['hr']} "
        f"beats per minute with a QT interval of {f['qt']} msec."
    )


def _sample_calcium(rng: random.Random) -> tuple[dict, dict]:
    alb = round(rng.uniform(1.5, 4.8), 1)
    ca = round(rng.uniform(6.5, 11.5), 1)
    sex, age = _sex(rng), rng.randint(18, 90)
    return (
        {"albumin": (alb, "g/dL"), "calcium": (ca, "mg/dL")},
        {"age": age, "sex": sex, "albumin": alb, "calcium": ca},
    )


def _calcium_note(f: dict, rng: random.Random) -> str:
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} reports muscle cramps and "
        f"perioral tingling. Laboratory results: serum calcium {_fmt(f['calcium'])} mg/dL, "
        f"albumin {_fmt(f['albumin'])} g/dL, phosphate {rng.uniform(2.5, 5.0):.1f} mg/dL, "
        f"magnesium {rng.uniform(1.5, 2.4):.1f} mg/dL."
    )


def _sample_centor(rng: random.Random) -> tuple[dict, dict]:
    sex, age = _sex(rng), rng.randint(4, 70)
    temp = round(rng.uniform(36.5, 39.8), 1)
    params = {
        "age": (age, "years"),
        "temperature": (temp, "degrees celsius"),
        "exudate_swelling_tonsils": rng.random() < 0.5,
        "tender_lymph_nodes": rng.random() < 0.5,
        "cough_absent": rng.random() < 0.5,
    }
    facts = {"age": age, "sex": sex, "temp": temp}
    facts.update({k: params[k] for k in ("exudate_swelling_tonsils", "tender_lymph_nodes", "cough_absent")})
    return params, facts


def _centor_note(f: dict, rng: random.Random) -> str:
    who = ("boy" if f["sex"] == "Male" else "girl") if f["age"] < 18 else _noun(f["sex"])
    pro = _pro(f["sex"])
    parts = [
        f"{_a(f['age'])} {f['age']}-year-old {who} presents with a sore throat for {rng.randint(1, 5)} days.",
        f"Temperature is {f['temp']} °C.",
        "Examination shows tonsillar exudates and swelling."
        if f["exudate_swelling_tonsils"]
        else "The tonsils are not enlarged and there is no exudate.",
        "The anterior cervical lymph nodes are tender and swollen."
        if f["tender_lymph_nodes"]
        else "There is no cervical lymphadenopathy.",
        f"{pro} denies any cough." if f["cough_absent"] else f"{pro} also reports a dry cough.",
    ]
    return " ".join(parts)


def _random_date(rng: random.Random, start: _dt.date, span_days: int) -> _dt.date:
    return start + _dt.timedelta(days=rng.randrange(span_days))


def _sample_gestational(rng: random.Random) -> tuple[dict, dict]:
    lmp = _random_date(rng, _dt.date(2015, 1, 1), 3650)
    current = lmp + _dt.timedelta(days=rng.randint(14, 290))
    age = rng.randint(18, 44)
    return (
        {"current_date": current.strftime("%m/%d/%Y"), "menstrual_date": lmp.strftime("%m/%d/%Y")},
        {"age": age, "sex": "Female", "lmp": lmp, "current": current},
    )


def _gestational_note(f: dict, rng: random.Random) -> str:
    return (
        f"A {f['age']}-year-old woman presents for a prenatal visit on "
        f"{f['current'].strftime('%m/%d/%Y')}. Her last menstrual period began on "
        f"{f['lmp'].strftime('%m/%d/%Y')}. A urine pregnancy test is positive."
    )


def _sample_lmp_cycle(rng: random.Random, *, min_cycle: int) -> tuple[dict, dict]:
    lmp = _random_date(rng, _dt.date(2015, 1, 1), 3650)
    cycle = rng.randint(min_cycle, 35)
    age = rng.randint(18, 44)
    return (
        {"menstrual_date": lmp.strftime("%m/%d/%Y"), "cycle_length": cycle},
        {"age": age, "sex": "Female", "lmp": lmp, "cycle": cycle},
    )


def _lmp_note(f: dict, rng: random.Random) -> str:
    return (
        f"A {f['age']}-year-old woman with a positive home pregnancy test presents for her first "
        f"prenatal visit. Her last menstrual period began on {f['lmp'].strftime('%m/%d/%Y')} and "
        f"her menstrual cycles are regular, lasting {f['cycle']} days."
    )


#: The generator's calculators, keyed by short name.  All answers and explanations come from
#: the ``medcalc`` package (medcalc-bench 1.7.0).  Known issues avoided: the package's
#: Estimated Due Date adds (instead of subtracting) the gap for cycles shorter than 28 days, so
#: only cycles of 28-35 days are generated for it; serum osmolality and QTc Fridericia are left
#: out because their explanation text contradicts their (correct) computation.
CALCULATORS: dict[str, Calculator] = {
    c.key: c
    for c in [
        Calculator(
            "bmi",
            6,
            "Body Mass Index (BMI)",
            "decimal",
            "bmi_calculator",
            "bmi_calculator_explanation",
            _sample_body,
            _body_note,
            "What is the patient's body mass index (BMI)? Your answer should be in terms of kg/m².",
        ),
        Calculator(
            "map",
            5,
            "Mean Arterial Pressure (MAP)",
            "decimal",
            "mean_arterial_pressure",
            "mean_arterial_pressure_explanation",
            _sample_map,
            _map_note,
            "What is patient's mean arterial pressure in mm Hg?",
        ),
        Calculator(
            "anion_gap",
            39,
            "Anion Gap",
            "decimal",
            "anion_gap",
            "compute_anion_gap_explanation",
            _sample_anion_gap,
            _anion_gap_note,
            "What is the patient's anion gap in terms of mEq/L?",
        ),
        Calculator(
            "creatinine_clearance",
            2,
            "Creatinine Clearance (Cockcroft-Gault Equation)",
            "decimal",
            "creatinine_clearance",
            "generate_cockcroft_gault_explanation",
            _sample_crcl,
            _crcl_note,
            "What is the patient's Creatinine Clearance using the Cockroft-Gault Equation "
            "in terms of mL/min? You should use the patient's adjusted body weight in kg "
            "for the weight. The adjusted body weight formula is min(ideal body weight, "
            "actual body weight) if the patient is normal weight, the adjusted body weight "
            "formula if overweight or obese, and the actual weight if underweight.",
        ),
        Calculator(
            "cha2ds2_vasc",
            4,
            "CHA2DS2-VASc Score for Atrial Fibrillation Stroke Risk",
            "integer",
            "cha2ds2_vasc_score",
            "generate_cha2ds2_vasc_explanation",
            _sample_cha2ds2,
            _cha2ds2_note,
            "What is the patient's CHA2DS2-VASc Score?",
        ),
        Calculator(
            "curb_65",
            45,
            "CURB-65 Score for Pneumonia Severity",
            "integer",
            "curb_65",
            "curb_65_explanation",
            _sample_curb65,
            _curb65_note,
            "What is the patient's CURB-65 score?",
        ),
        Calculator(
            "qtc_bazett",
            11,
            "QTc Bazett Calculator",
            "decimal",
            "qt_calculator_bazett",
            "bazett_calculator_explanation",
            _sample_bazett,
            _bazett_note,
            "Using the Bazett Formula for corrected QT interval, what is the patient's corrected QT interval in terms of msec?",
        ),
        Calculator(
            "ideal_body_weight",
            10,
            "Ideal Body Weight",
            "decimal",
            "ideal_body_weight",
            "ibw_explanation",
            _sample_ibw,
            _body_note,
            "Based on the patient's height and sex, what is the patient's ideal body weight in terms of kg?",
        ),
        Calculator(
            "bsa",
            60,
            "Body Surface Area Calculator",
            "decimal",
            "bsa_calculator",
            "bsa_calculator_explaination",
            _sample_body,
            _body_note,
            "What is the patient's body surface area? Please output your answer in terms of m².",
        ),
        Calculator(
            "calcium_correction",
            7,
            "Calcium Correction for Hypoalbuminemia",
            "decimal",
            "calcium_correction",
            "calculate_corrected_calcium_explanation",
            _sample_calcium,
            _calcium_note,
            "Using the Calcium Correction for Hypoalbuminemia formula, what is the "
            "patient's corrected calcium in mg/dL? The patient's normal albumin "
            "concentration is 4 g/dL.",
        ),
        Calculator(
            "centor",
            20,
            "Centor Score (Modified/McIsaac) for Strep Pharyngitis",
            "integer",
            "centor_score",
            "compute_centor_score_explanation",
            _sample_centor,
            _centor_note,
            "What is the patient's Centor Score?",
        ),
        Calculator(
            "gestational_age",
            69,
            "Estimated Gestational Age",
            "weeks_days",
            "gestational_age",
            "compute_gestational_age_explanation",
            _sample_gestational,
            _gestational_note,
            "Based on the patient's last menstrual period and today's date, what is the "
            "patient's estimated gestational age? Your response should be a tuple "
            "specifying the number of weeks and days, e.g. (4 weeks, 0 days).",
        ),
        Calculator(
            "conception_date",
            68,
            "Estimated of Conception",
            "date",
            "conception_date",
            "add_2_weeks_explanation",
            lambda rng: _sample_lmp_cycle(rng, min_cycle=21),
            _lmp_note,
            "Using the patient's last menstrual period date, what is the patient's "
            "estimated date of conception? Your response should be in the format "
            "M/D/Y (e.g. 08/31/2023).",
        ),
        Calculator(
            "due_date",
            13,
            "Estimated Due Date",
            "date",
            "estimated_due_date",
            "add_40_weeks_explanation",
            lambda rng: _sample_lmp_cycle(rng, min_cycle=28),
            _lmp_note,
            "Using Naegele's Rule for estimated due date based on the last menstrual "
            "period and cycle length, what is the patient's estimated due date? Your "
            "response should be in the format M/D/Y (e.g. 08/31/2023).",
        ),
    ]
}
