"""What a study is and what happens to it, independent of HTTP: the routes, the tests and the load
benchmark all go through these functions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pathosynth.errors import UserError
from pathosynth.reader import cases as case_files
from pathosynth.reader.security import hash_password, new_token
from pathosynth.reader.tables import Admin, Answer, Assignment, Case, Reader, Setting, Study, SurveyAnswer

QUESTIONS = ("origin", "label", "confidence")
ORIGINS = ("real", "synthetic")
CONFIDENCE = (1, 2, 3, 4, 5)
LIKERT = {1: "very negative", 2: "negative", 3: "neutral", 4: "positive", 5: "very positive"}

# The four questions physicians answered in the survey paper (bridging-ai-healthcare-survey §3.2),
# each a five-point Likert item with free comments except the last, which is free text only.
SURVEY_TEMPLATE = [
    {"id": "q1", "likert": True, "free_text": True,
     "text": "Are you keen to exploit medical AI in general when it achieves accurate and reliable "
             "performance in the near future? Please tell us your expectations, wishes, and worries."},
    {"id": "q2", "likert": True, "free_text": True,
     "text": "What do you think about using GAN-generated images for data augmentation? Please tell us "
             "your expectations, wishes, and worries."},
    {"id": "q3", "likert": True, "free_text": True,
     "text": "What do you think about using GAN-generated images for physician training? Please tell us "
             "your expectations, wishes, and worries."},
    {"id": "q4", "likert": False, "free_text": True,
     "text": "Any comments or suggestions about our projects towards developing clinically relevant "
             "AI-powered systems based on your daily diagnosis experience?"},
]


def now() -> datetime:
    return datetime.now(timezone.utc)


def aware(moment: datetime | None) -> datetime | None:
    # SQLite hands datetimes back without their zone; every stored time is UTC
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def server_secret(session: Session) -> str:
    row = session.get(Setting, "secret")
    if row is None:
        session.add(Setting(key="secret", value=new_token()))
        try:
            session.commit()
        except IntegrityError:  # another worker created it first
            session.rollback()
        row = session.get(Setting, "secret")
    return row.value


def check_admin_credentials(username: str, password: str) -> None:
    """A name one can type at the login form (printable, no surrounding blanks, at most 64
    characters) and a password of at least 8 characters."""
    if not username or username != username.strip() or len(username) > 64 or not username.isprintable():
        raise UserError(f"admin name {username!r}: use 1-64 printable characters without surrounding blanks")
    if len(password) < 8:
        raise UserError("an admin's password needs at least 8 characters")


def create_admin(session: Session, username: str, password: str) -> Admin:
    check_admin_credentials(username, password)
    if session.scalar(select(Admin).where(Admin.username == username)):
        raise UserError(f"admin {username!r} already exists; log in with it or choose another name")
    admin = Admin(username=username, password_hash=hash_password(password))
    session.add(admin)
    session.commit()
    return admin


def reset_password(session: Session, username: str, password: str) -> None:
    admin = session.scalar(select(Admin).where(Admin.username == username))
    if admin is None:
        raise UserError(f"no admin {username!r}; create it with `pathosynth admin {username}`")
    if len(password) < 8:
        raise UserError("a password needs at least 8 characters")
    admin.password_hash = hash_password(password)
    session.commit()


@dataclass
class CaseGroup:
    """A dataset folder and how many cases of each label to draw from it."""

    folder: str
    counts: dict[str, int]
    split: str | None = None


def check_questions(questions: list[str]) -> list[str]:
    unknown = [q for q in questions if q not in QUESTIONS]
    if unknown or not ({"origin", "label"} & set(questions)):
        raise UserError(f"questions {questions}: choose among {list(QUESTIONS)}, with origin or label")
    return [q for q in QUESTIONS if q in questions]


def check_questionnaire(items: list[dict] | None) -> list[dict] | None:
    if not items:
        return None
    ids = [item.get("id") for item in items]
    if len(set(ids)) != len(ids) or not all(isinstance(i, str) and i for i in ids):
        raise UserError("questionnaire items need distinct, non-empty ids")
    for item in items:
        if not str(item.get("text", "")).strip() or not (item.get("likert") or item.get("free_text")):
            raise UserError(f"questionnaire item {item['id']!r} needs a text and a Likert scale or free text")
    return [{"id": i["id"], "text": str(i["text"]).strip(), "likert": bool(i.get("likert")),
             "free_text": bool(i.get("free_text"))} for i in items]


def create_vtt(session: Session, name: str, groups: list[CaseGroup], *, questions: list[str],
               seed: int = 0, instructions: str = "", questionnaire: list[dict] | None = None) -> Study:
    """A Visual Turing Test: cases drawn from real and synthetic folders, rendered once, stored."""
    if not groups:
        raise UserError("a Visual Turing Test needs at least one dataset folder")
    questions = check_questions(questions)
    sources = []
    for index, group in enumerate(groups):
        sources += case_files.pick_cases(group.folder, group.counts, seed=seed + index, split=group.split)
    origins = {source.origin for source in sources}
    if "origin" in questions and origins != set(ORIGINS):
        raise UserError(f"the folders given hold only {sorted(origins)} images; a real-or-synthetic question "
                        "needs both a real and a synthetic folder")
    random.Random(seed).shuffle(sources)  # case keys must not follow the folders' order
    images = case_files.render_sources(sources)
    _check_equal_sizes(images)
    classes = sorted({source.label for source in sources})
    study = Study(name=name.strip() or "Visual Turing Test", kind="vtt", questions=questions, classes=classes,
                  instructions=instructions, settings={"seed": seed, "groups": [vars(g) for g in groups]},
                  questionnaire=check_questionnaire(questionnaire))
    width = len(str(len(sources)))
    study.cases = [Case(key=f"case-{i + 1:0{width}d}", truth_origin=source.origin, truth_label=source.label,
                        source=source.to_json(), image=image)
                   for i, (source, image) in enumerate(zip(sources, images, strict=True))]
    session.add(study)
    session.commit()
    return study


def _check_equal_sizes(images: list[bytes]) -> None:
    # blinding: a case whose file is longer or shorter than the others would stand out unseen; with
    # the stored encoding only a different canvas (a 2D and a 3D folder) changes the length
    if len({len(image) for image in images}) > 1:
        raise UserError("the folders give cases of different layouts (2D slices and 3D volumes); a Visual "
                        "Turing Test needs all its folders 2D or all 3D")


def create_survey(session: Session, name: str, questionnaire: list[dict]) -> Study:
    items = check_questionnaire(questionnaire)
    if not items:
        raise UserError("a questionnaire needs at least one item")
    study = Study(name=name.strip() or "Questionnaire", kind="survey", questions=[], classes=[],
                  questionnaire=items)
    session.add(study)
    session.commit()
    return study


def invite(session: Session, study: Study, names: list[str]) -> list[Reader]:
    """One personal link per name; each reader's case order is drawn now and stored, so it stays."""
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise UserError("give at least one reader name")
    case_ids = [case.id for case in study.cases]
    readers = []
    for name in names:
        reader = Reader(study_id=study.id, name=name, token=new_token())
        session.add(reader)
        session.flush()
        order = list(case_ids)
        random.SystemRandom().shuffle(order)
        session.add_all(Assignment(reader_id=reader.id, position=p, case_id=c) for p, c in enumerate(order))
        readers.append(reader)
    session.commit()
    return readers


def reader_by_token(session: Session, token: str) -> Reader | None:
    if not token or len(token) > 64:
        return None
    return session.scalar(select(Reader).where(Reader.token == token))


def answered_count(session: Session, reader: Reader) -> int:
    return session.scalar(select(func.count()).select_from(Answer).where(Answer.reader_id == reader.id))


def case_count(session: Session, reader: Reader) -> int:
    return session.scalar(select(func.count()).select_from(Assignment).where(Assignment.reader_id == reader.id))


def next_position(session: Session, reader: Reader) -> int | None:
    """The first case in the reader's order not yet answered: where a returning reader resumes."""
    answered = select(Answer.case_id).where(Answer.reader_id == reader.id)
    return session.scalar(select(func.min(Assignment.position))
                          .where(Assignment.reader_id == reader.id, Assignment.case_id.not_in(answered)))


def assignment_at(session: Session, reader: Reader, position: int) -> Assignment | None:
    return session.scalar(select(Assignment).where(Assignment.reader_id == reader.id,
                                                   Assignment.position == position))


def mark_shown(session: Session, assignment: Assignment) -> None:
    """The first time a case is shown starts its clock; reloading the page does not restart it."""
    session.execute(update(Assignment).where(Assignment.id == assignment.id, Assignment.first_shown_at.is_(None))
                    .values(first_shown_at=now()))
    session.commit()


def validate_answer(study: Study, origin: str | None, label: str | None, confidence: int | None) -> None:
    asked = set(study.questions)
    if ("origin" in asked) != (origin is not None) or (origin is not None and origin not in ORIGINS):
        raise UserError("answer real or synthetic")
    if ("label" in asked) != (label is not None) or (label is not None and label not in study.classes):
        raise UserError(f"choose one of {', '.join(study.classes)}")
    if ("confidence" in asked) != (confidence is not None) or (confidence is not None and confidence not in CONFIDENCE):
        raise UserError("give your confidence from 1 (guess) to 5 (certain)")


def record_answer(session: Session, reader: Reader, position: int, *, origin: str | None, label: str | None,
                  confidence: int | None) -> bool:
    """Store an answer at once; False when this case was already answered (a double submit: the
    first answer stands, nothing else changes)."""
    study = reader.study
    validate_answer(study, origin, label, confidence)
    assignment = assignment_at(session, reader, position)
    if assignment is None:
        raise UserError("no such case in your study")
    answered_at = now()
    shown = aware(assignment.first_shown_at)
    seconds = (answered_at - shown).total_seconds() if shown else None
    session.add(Answer(reader_id=reader.id, case_id=assignment.case_id, origin=origin, label=label,
                       confidence=confidence, seconds=seconds, answered_at=answered_at))
    try:
        session.commit()
        return True
    except IntegrityError:
        session.rollback()
        return False


def record_survey(session: Session, reader: Reader, answers: dict[str, tuple[int | None, str]]) -> int:
    """Store questionnaire answers item by item; an item already answered keeps its first answer."""
    items = {item["id"]: item for item in reader.study.questionnaire or []}
    stored = 0
    for item_id, (likert, text) in answers.items():
        item = items.get(item_id)
        if item is None:
            raise UserError(f"no questionnaire item {item_id!r}")
        if likert is not None and (not item["likert"] or likert not in LIKERT):
            raise UserError("Likert answers go from 1 (very negative) to 5 (very positive)")
        if item["likert"] and likert is None and not text.strip():
            continue  # left blank: not an answer
        session.add(SurveyAnswer(reader_id=reader.id, item=item_id, likert=likert, text=text.strip()[:5000]))
        try:
            session.commit()
            stored += 1
        except IntegrityError:
            session.rollback()
    return stored


def survey_done(session: Session, reader: Reader) -> bool:
    if not reader.study.questionnaire:
        return True
    count = session.scalar(select(func.count()).select_from(SurveyAnswer).where(SurveyAnswer.reader_id == reader.id))
    return count > 0


EXPORT_COLUMNS = ("reader", "reader_id", "case", "truth_origin", "truth_label", "answer_origin", "answer_label",
                  "confidence", "seconds", "answered_at", "source_dataset", "source_sample")
SURVEY_COLUMNS = ("reader", "reader_id", "item", "likert", "text", "answered_at")


def export_rows(session: Session, study: Study) -> list[dict]:
    """Answers in long format: one row per reader and case, in answer order."""
    query = (select(Answer, Reader, Case).join(Reader, Answer.reader_id == Reader.id)
             .join(Case, Answer.case_id == Case.id).where(Reader.study_id == study.id)
             .order_by(Reader.id, Answer.answered_at, Answer.id))
    rows = []
    for answer, reader, case in session.execute(query):
        rows.append({"reader": reader.name, "reader_id": reader.id, "case": case.key,
                     "truth_origin": case.truth_origin, "truth_label": case.truth_label,
                     "answer_origin": answer.origin, "answer_label": answer.label,
                     "confidence": answer.confidence,
                     "seconds": None if answer.seconds is None else round(answer.seconds, 3),
                     "answered_at": aware(answer.answered_at).isoformat(),
                     "source_dataset": case.source.get("dataset"), "source_sample": case.source.get("sample_id")})
    return rows


def survey_rows(session: Session, study: Study) -> list[dict]:
    query = (select(SurveyAnswer, Reader).join(Reader, SurveyAnswer.reader_id == Reader.id)
             .where(Reader.study_id == study.id).order_by(Reader.id, SurveyAnswer.item))
    return [{"reader": reader.name, "reader_id": reader.id, "item": answer.item, "likert": answer.likert,
             "text": answer.text, "answered_at": aware(answer.answered_at).isoformat()}
            for answer, reader in session.execute(query)]


def survey_summary(session: Session, study: Study) -> list[dict] | None:
    """Per questionnaire item: how many answered, the Likert values' mean and counts, the comments."""
    if not study.questionnaire:
        return None
    rows = survey_rows(session, study)
    summary = []
    for item in study.questionnaire:
        answers = [row for row in rows if row["item"] == item["id"]]
        values = [row["likert"] for row in answers if row["likert"] is not None]
        summary.append({"item": item, "answered": len(answers),
                        "counts": {value: values.count(value) for value in LIKERT},
                        "mean": sum(values) / len(values) if values else None,
                        "comments": [(row["reader"], row["text"]) for row in answers if row["text"]]})
    return summary
