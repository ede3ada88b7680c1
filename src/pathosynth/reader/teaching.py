"""Teaching mode: cases made on demand for a trainee, a quiz mixing typical and atypical cases, and
each trainee's pathology coverage (the survey's "pathology coverage rate": which kinds of case a
trainee has seen, and got right).

Every teaching case is synthetic and shown as such; its provenance (model, checkpoint, seed,
condition) is stored with it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pathosynth.errors import UserError
from pathosynth.reader import cases as case_files
from pathosynth.reader.studies import aware, now
from pathosynth.reader.tables import Reader, Study, TeachingCase
from pathosynth.reader.teaching_sources import TeachingRequest

TEACHING_COLUMNS = ("reader", "reader_id", "case", "mode", "label", "attributes", "typical", "answer", "correct",
                    "created_at", "answered_at", "seed", "model", "checkpoint_sha256")


def create_teaching_study(session: Session, state, name: str, source: str, *, base_scans: str | None = None,
                          quiz_length: int = 10, atypical_share: float = 0.15) -> Study:
    """A teaching study on a trained run or a pool of synthetic images (`source`, a folder); a 3D
    nodule run also needs the CT scans its nodules are placed into (`base_scans`)."""
    if not 1 <= quiz_length <= 200:
        raise UserError("a quiz has 1 to 200 questions")
    if not 0.0 <= atypical_share <= 1.0:
        raise UserError("the atypical share is a fraction from 0 to 1 (the paper's students saw ~0.15)")
    description = state.maker(source, base_scans).describe()
    study = Study(name=name.strip() or "Teaching", kind="teaching", questions=[],
                  classes=list(description["classes"]),
                  settings={"source": source, "base_scans": base_scans, "quiz_length": quiz_length,
                            "atypical_share": atypical_share, "maker": description,
                            "quiz_asks": quiz_question(description)})
    session.add(study)
    session.commit()
    return study


WHERE = "where"  # the quiz that asks the trainee to click on the lesion
CLICK_MARGIN = 8  # canvas pixels around a lesion's box that still count as on it


def quiz_question(description: dict) -> str:
    """What a quiz asks: the class when there are several, else an attribute with a choice (a
    nodule's attenuation, say), else where the lesion is (one class, boxes, 2D)."""
    if len(description["classes"]) > 1:
        return "label"
    attributes = description.get("attributes", {})
    # attenuation first: telling a ground-glass from a solid nodule is what a reader learns to do
    for name in sorted(attributes, key=lambda name: name != "attenuation"):
        if len(attributes[name]) > 1:
            return name
    if description.get("accepts_box") and description.get("dimensionality") == 2:
        return WHERE
    raise UserError("this source has one class and no attribute to ask about; a quiz needs a choice")


def quiz_choices(study: Study) -> list[str]:
    asks = study.settings["quiz_asks"]
    if asks in ("label", WHERE):
        return study.classes
    return study.settings["maker"]["attributes"][asks]


def truth_of(study: Study, case: TeachingCase) -> str:
    asks = study.settings["quiz_asks"]
    return case.label if asks in ("label", WHERE) else str(case.attributes.get(asks))


def clicked_on_lesion(case: TeachingCase, answer: str) -> bool:
    try:
        x, y = (float(v) for v in answer.split(","))
    except ValueError as exc:
        raise UserError("click on the image where you see the lesion, then answer") from exc
    return any(x0 - CLICK_MARGIN <= x <= x1 + CLICK_MARGIN and y0 - CLICK_MARGIN <= y <= y1 + CLICK_MARGIN
               for x0, y0, x1, y1 in case.canvas_boxes)


def check_rate(session: Session, state, reader: Reader) -> None:
    since = now() - timedelta(minutes=1)
    recent = session.scalar(select(func.count()).select_from(TeachingCase)
                            .where(TeachingCase.reader_id == reader.id, TeachingCase.created_at >= since))
    if recent >= state.limits.per_minute:
        raise HTTPException(status_code=429, headers={"Retry-After": "60"},
                            detail=f"You asked for {recent} cases in the last minute; the limit is "
                                   f"{state.limits.per_minute}. Wait a minute and ask again.")


def _made(session: Session, state, reader: Reader, mode: str, make) -> TeachingCase:
    """Run the maker under the server's generation slots, render, store."""
    check_rate(session, state, reader)
    if not state.generation_slots.acquire(timeout=120):
        raise HTTPException(status_code=429, headers={"Retry-After": "30"},
                            detail="The server is busy making other cases; ask again in half a minute.")
    try:
        settings = reader.study.settings
        made = make(state.maker(settings["source"], settings.get("base_scans")))
    finally:
        state.generation_slots.release()
    # compressed: a teaching case is synthetic and says so, so its file size has nothing to give away
    render = dict(dimensionality=made.dimensionality, intensity_unit=made.intensity_unit, modality=made.modality,
                  spacing=made.spacing, boxes=made.boxes, compress=True)
    case = TeachingCase(reader_id=reader.id, mode=mode, label=made.label, attributes=dict(made.attributes),
                        boxes=[list(map(float, box)) for box in made.boxes], typical=bool(made.typical),
                        canvas_boxes=(case_files.canvas_rectangles(made.array.shape, made.spacing, made.boxes)
                                      if made.dimensionality == 2 else []),
                        provenance=dict(made.provenance, synthetic=True, mark=made.mark),
                        image=case_files.render_array(made.array, **render),
                        outlined=case_files.render_array(made.array, outline=True, **render))
    session.add(case)
    session.commit()
    return case


def request_case(session: Session, state, reader: Reader, *, label: str | None, box: list[float] | None,
                 size: str | None, attenuation: str | None) -> TeachingCase:
    request = TeachingRequest(label=label or None, box=box, size=size or None, attenuation=attenuation or None,
                              seed=secrets.randbelow(2**31))
    return _made(session, state, reader, "request", lambda maker: maker.make(request))


def quiz_case(session: Session, state, reader: Reader) -> TeachingCase:
    seed = secrets.randbelow(2**31)
    settings = reader.study.settings
    # a pool may hold no atypical case at all: then every question is typical rather than none asked
    can = settings["maker"].get("can_make_atypical", True)
    atypical = can and secrets.randbelow(10_000) < settings["atypical_share"] * 10_000
    return _made(session, state, reader, "quiz", lambda maker: maker.quiz_case(seed, atypical=atypical))


def answer_quiz(session: Session, reader: Reader, case: TeachingCase, answer: str) -> None:
    """The first answer counts (a double submit changes nothing)."""
    if case.mode != "quiz" or case.answer is not None:
        return
    if reader.study.settings["quiz_asks"] == WHERE:
        correct = clicked_on_lesion(case, answer)
    elif answer in quiz_choices(reader.study):
        correct = answer == truth_of(reader.study, case)
    else:
        raise UserError(f"choose one of {', '.join(quiz_choices(reader.study))}")
    case.answer = answer
    case.correct = correct
    case.answered_at = now()
    session.commit()


def trainee_case(session: Session, reader: Reader, case_id: int) -> TeachingCase:
    case = session.get(TeachingCase, case_id)
    if case is None or case.reader_id != reader.id:
        raise HTTPException(status_code=404)
    return case


def open_quiz_case(session: Session, reader: Reader) -> TeachingCase | None:
    return session.scalar(select(TeachingCase).where(TeachingCase.reader_id == reader.id, TeachingCase.mode == "quiz",
                                                     TeachingCase.answer.is_(None)).order_by(TeachingCase.id))


def score(session: Session, reader: Reader) -> dict:
    answered = session.scalars(select(TeachingCase).where(TeachingCase.reader_id == reader.id,
                                                          TeachingCase.mode == "quiz",
                                                          TeachingCase.answer.is_not(None))
                               .order_by(TeachingCase.id)).all()
    length = reader.study.settings["quiz_length"]
    # the current quiz: the answers since the last full quiz (a full quiz stays shown until the next starts)
    in_current = len(answered) % length or min(length, len(answered))
    current = answered[len(answered) - in_current:]
    return {"answered": len(answered), "correct": sum(bool(c.correct) for c in answered), "quiz_length": length,
            "current_answered": len(current), "current_correct": sum(bool(c.correct) for c in current)}


def coverage(session: Session, study: Study, reader: Reader) -> dict:
    """Per kind of case (class, or the quizzed attribute's value) x typical/atypical: seen, answered,
    correct; and the coverage rate, the share of those kinds the trainee has seen at least once."""
    kinds = quiz_choices(study)
    seen = {(kind, typical): {"seen": 0, "answered": 0, "correct": 0} for kind in kinds for typical in (True, False)}
    for case in session.scalars(select(TeachingCase).where(TeachingCase.reader_id == reader.id)):
        cell = seen.get((truth_of(study, case), bool(case.typical)))
        if cell is None:
            continue
        cell["seen"] += 1
        if case.answer is not None:
            cell["answered"] += 1
            cell["correct"] += bool(case.correct)
    rows = [{"kind": kind, "typical": typical, **counts} for (kind, typical), counts in seen.items()]
    covered = sum(1 for row in rows if row["seen"])
    return {"rows": rows, "rate": covered / len(rows), "typical_rate": _rate(rows, True),
            "atypical_rate": _rate(rows, False)}


def _rate(rows: list[dict], typical: bool) -> float:
    part = [row for row in rows if row["typical"] == typical]
    return sum(1 for row in part if row["seen"]) / len(part)


def teaching_rows(session: Session, study: Study) -> list[dict]:
    query = (select(TeachingCase, Reader).join(Reader, TeachingCase.reader_id == Reader.id)
             .where(Reader.study_id == study.id).order_by(Reader.id, TeachingCase.id))
    return [{"reader": reader.name, "reader_id": reader.id, "case": case.id, "mode": case.mode,
             "label": case.label, "attributes": case.attributes, "typical": case.typical, "answer": case.answer,
             "correct": case.correct, "created_at": aware(case.created_at).isoformat(),
             "answered_at": aware(case.answered_at).isoformat() if case.answered_at else None,
             "seed": case.provenance.get("seed"), "model": case.provenance.get("model"),
             "checkpoint_sha256": case.provenance.get("checkpoint_sha256")}
            for case, reader in session.execute(query)]


def teaching_summary(session: Session, study: Study) -> list[dict]:
    return [{"reader": reader, "score": score(session, reader), "coverage": coverage(session, study, reader),
             "cases": session.scalar(select(func.count()).select_from(TeachingCase)
                                     .where(TeachingCase.reader_id == reader.id))}
            for reader in study.readers]
