"""Trainees, by personal link `/t/{token}`: ask for a case, take the quiz, see the score and coverage."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from pathosynth.errors import UserError
from pathosynth.reader import teaching
from pathosynth.reader.app import db, page, see_other, state_of
from pathosynth.reader.auth import check_reader_csrf, reader_csrf, require_reader
from pathosynth.reader.tables import TeachingCase

router = APIRouter(prefix="/t/{token}")


@router.get("")
def home(request: Request, token: str, session: Session = Depends(db)):
    reader = require_reader(session, token, "trainee")
    study = reader.study
    recent = session.scalars(select(TeachingCase).where(TeachingCase.reader_id == reader.id)
                             .order_by(TeachingCase.id.desc()).limit(12)).all()
    return page(request, "teach_home.html", reader=reader, study=study, maker=study.settings["maker"],
                score=teaching.score(session, reader), coverage=teaching.coverage(session, study, reader),
                recent=recent, open_quiz=teaching.open_quiz_case(session, reader),
                csrf=reader_csrf(request, reader), limit=state_of(request).limits.per_minute)


def _box(fields: list[str]) -> list[float] | None:
    if not any(f.strip() for f in fields):
        return None
    try:
        return [float(f) for f in fields]
    except ValueError as exc:
        raise UserError("draw the lesion's box on the image again; its corners were not numbers") from exc


@router.post("/request")
def request_case(request: Request, token: str, csrf: str = Form(""), label: str = Form(""),
                 x0: str = Form(""), y0: str = Form(""), x1: str = Form(""), y1: str = Form(""),
                 size: str = Form(""), attenuation: str = Form(""), session: Session = Depends(db)):
    reader = require_reader(session, token, "trainee")
    check_reader_csrf(request, reader, csrf)
    _check_open(reader)
    box = _box([x0, y0, x1, y1])  # the project's convention: [x_min, y_min, x_max, y_max] in image pixels
    case = teaching.request_case(session, state_of(request), reader, label=label, box=box, size=size,
                                 attenuation=attenuation)
    return see_other(f"/t/{token}/case/{case.id}")


@router.post("/quiz")
def quiz(request: Request, token: str, csrf: str = Form(""), session: Session = Depends(db)):
    reader = require_reader(session, token, "trainee")
    check_reader_csrf(request, reader, csrf)
    _check_open(reader)
    waiting = teaching.open_quiz_case(session, reader)  # a double click does not make two questions
    case = waiting or teaching.quiz_case(session, state_of(request), reader)
    return see_other(f"/t/{token}/case/{case.id}")


def _check_open(reader) -> None:
    if not reader.study.is_open:
        raise HTTPException(status_code=403, detail="The organiser has closed this teaching session.")


@router.get("/case/{case_id}")
def case_page(request: Request, token: str, case_id: int, session: Session = Depends(db)):
    reader = require_reader(session, token, "trainee")
    case = teaching.trainee_case(session, reader, case_id)
    revealed = case.mode == "request" or case.answer is not None
    return page(request, "teach_case.html", reader=reader, study=reader.study, case=case, revealed=revealed,
                truth=teaching.truth_of(reader.study, case) if revealed else None,
                choices=teaching.quiz_choices(reader.study), asks=reader.study.settings["quiz_asks"],
                score=teaching.score(session, reader), csrf=reader_csrf(request, reader))


@router.get("/case/{case_id}/image")
def case_image(token: str, case_id: int, outlined: int = 0, session: Session = Depends(db)):
    reader = require_reader(session, token, "trainee")
    case = teaching.trainee_case(session, reader, case_id)
    revealed = case.mode == "request" or case.answer is not None
    if outlined and not revealed:
        raise HTTPException(status_code=403, detail="The lesion is shown once you have answered.")
    return Response(content=case.outlined if outlined else case.image, media_type="image/png")


@router.post("/case/{case_id}/answer")
def answer(request: Request, token: str, case_id: int, csrf: str = Form(""), choice: str = Form(""),
           x: str = Form(""), y: str = Form(""), session: Session = Depends(db)):
    reader = require_reader(session, token, "trainee")
    check_reader_csrf(request, reader, csrf)
    given = f"{x},{y}" if reader.study.settings["quiz_asks"] == teaching.WHERE else choice
    teaching.answer_quiz(session, reader, teaching.trainee_case(session, reader, case_id), given)
    return see_other(f"/t/{token}/case/{case_id}")
