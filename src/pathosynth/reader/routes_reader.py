"""Readers of a Visual Turing Test or questionnaire, by personal link `/r/{token}`.

Blinding: a case is addressed by its position in the reader's own order, and its image is the
bytes rendered when the study was made, sent with the same headers for every case; the page and the
image carry nothing else about the case, and the truth never leaves the server.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from pathosynth.reader import studies
from pathosynth.reader.app import db, page, see_other, state_of
from pathosynth.reader.auth import check_reader_csrf, reader_csrf, require_reader
from pathosynth.reader.studies import LIKERT
from pathosynth.reader.tables import Case

router = APIRouter(prefix="/r/{token}")


def _where_next(session: Session, reader) -> str:
    position = studies.next_position(session, reader)
    if position is not None:
        return f"/r/{reader.token}/case/{position + 1}"
    if not studies.survey_done(session, reader):
        return f"/r/{reader.token}/survey"
    return f"/r/{reader.token}/done"


@router.get("")
def home(request: Request, token: str, session: Session = Depends(db)):
    reader = require_reader(session, token, "reader")
    reader.last_seen_at = studies.now()
    session.commit()
    return page(request, "reader_home.html", reader=reader, study=reader.study,
                answered=studies.answered_count(session, reader), total=studies.case_count(session, reader),
                next_url=_where_next(session, reader))


@router.get("/case/{number}")
def case_page(request: Request, token: str, number: int, session: Session = Depends(db)):
    reader = require_reader(session, token, "reader")
    if not reader.study.is_open:
        return page(request, "message.html", status_code=403, title="This study is closed",
                    text="The study's organiser has closed it; thank you for your answers.")
    assignment = studies.assignment_at(session, reader, number - 1)
    if assignment is None:
        raise HTTPException(status_code=404)
    next_position = studies.next_position(session, reader)
    if next_position is None or number - 1 != next_position:
        # answered cases are not shown again (the first answer stands): go where the reader is
        return see_other(_where_next(session, reader))
    studies.mark_shown(session, assignment)
    return page(request, "reader_case.html", reader=reader, study=reader.study, number=number,
                total=studies.case_count(session, reader), csrf=reader_csrf(request, reader))


@router.get("/image/{number}")
def case_image(token: str, number: int, session: Session = Depends(db)):
    reader = require_reader(session, token, "reader")
    assignment = studies.assignment_at(session, reader, number - 1)
    if assignment is None or not reader.study.is_open:
        raise HTTPException(status_code=404)
    image = session.get(Case, assignment.case_id).image
    return Response(content=image, media_type="image/png")


@router.post("/answer")
def answer(request: Request, token: str, number: int = Form(...), csrf: str = Form(""),
           origin: str | None = Form(None), label: str | None = Form(None), confidence: int | None = Form(None),
           session: Session = Depends(db)):
    reader = require_reader(session, token, "reader")
    check_reader_csrf(request, reader, csrf)
    if not reader.study.is_open:
        raise HTTPException(status_code=403, detail="The study's organiser has closed it.")
    reader.last_seen_at = studies.now()  # committed with the answer: one write per answer
    studies.record_answer(session, reader, number - 1, origin=origin or None, label=label or None,
                          confidence=confidence)
    return see_other(_where_next(session, reader))


@router.get("/survey")
def survey_page(request: Request, token: str, session: Session = Depends(db)):
    reader = require_reader(session, token, "reader")
    if not reader.study.questionnaire or studies.survey_done(session, reader):
        return see_other(f"/r/{token}/done")
    return page(request, "reader_survey.html", reader=reader, study=reader.study, likert=LIKERT,
                csrf=reader_csrf(request, reader))


@router.post("/survey")
async def survey_submit(request: Request, token: str):
    # the items are the study's own, so the form's fields are only known once it is read
    form = {key: str(value) for key, value in (await request.form()).items()}
    await run_in_threadpool(_store_survey, request, token, form)
    return see_other(f"/r/{token}/done")


def _store_survey(request: Request, token: str, form: dict[str, str]) -> None:
    with state_of(request).sessions() as session:
        reader = require_reader(session, token, "reader")
        check_reader_csrf(request, reader, form.get("csrf", ""))
        answers = {}
        for item in reader.study.questionnaire or []:
            raw = form.get(f"likert-{item['id']}", "")
            answers[item["id"]] = (int(raw) if raw.isdigit() else None, form.get(f"text-{item['id']}", ""))
        studies.record_survey(session, reader, answers)


@router.get("/done")
def done(request: Request, token: str, session: Session = Depends(db)):
    reader = require_reader(session, token, "reader")
    return page(request, "reader_done.html", reader=reader, study=reader.study,
                answered=studies.answered_count(session, reader), total=studies.case_count(session, reader))
