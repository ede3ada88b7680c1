"""The admin's pages: log in, make studies, invite readers, watch progress, export and see results."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from pathosynth.errors import UserError
from pathosynth.reader import stats, studies
from pathosynth.reader.teaching import TEACHING_COLUMNS, create_teaching_study, teaching_rows, teaching_summary
from pathosynth.reader.app import db, page, see_other, state_of
from pathosynth.reader.auth import (ADMIN_COOKIE, LOGIN_COOKIE, SESSION_LIFETIME, admin_csrf, admin_session,
                                    check_admin_csrf, client_address, log_in, log_out, login_binding, require_admin)
from pathosynth.reader.exports import csv_text
from pathosynth.reader.security import csrf_ok, csrf_token, new_token
from pathosynth.reader.tables import Answer, Case, Reader, Study, SurveyAnswer, TeachingCase

router = APIRouter(prefix="/admin")
COOKIE = {"httponly": True, "samesite": "strict", "path": "/"}


@router.get("/login")
def login_page(request: Request, session: Session = Depends(db)):
    if admin_session(request, session):
        return see_other("/admin")
    binding = login_binding(request) or new_token()
    response = page(request, "admin_login.html", csrf=csrf_token(state_of(request).secret, f"login:{binding}"))
    response.set_cookie(LOGIN_COOKIE, binding, max_age=3600, **COOKIE)
    return response


@router.post("/login")
def login(request: Request, username: str = Form(""), password: str = Form(""), csrf: str = Form(""),
          session: Session = Depends(db)):
    state = state_of(request)
    if not csrf_ok(state.secret, f"login:{login_binding(request)}", csrf):
        raise HTTPException(status_code=403, detail="This form has expired; reload the login page.")
    token = log_in(session, username, password, address=client_address(request), throttle=state.login_throttle)
    if token is None:
        return page(request, "admin_login.html", status_code=401, error="Wrong user name or password.",
                    csrf=csrf)
    response = see_other("/admin")
    response.set_cookie(ADMIN_COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()), **COOKIE)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form(""), session: Session = Depends(db)):
    check_admin_csrf(request, session, csrf)
    log_out(session, request.cookies.get(ADMIN_COOKIE, ""))
    response = see_other("/admin/login")
    response.delete_cookie(ADMIN_COOKIE, path="/")
    return response


@router.get("")
def home(request: Request, session: Session = Depends(db)):
    admin = require_admin(request, session)
    rows = []
    for study in session.scalars(select(Study).order_by(Study.id.desc())):
        readers = session.scalar(select(func.count()).select_from(Reader).where(Reader.study_id == study.id))
        rows.append({"study": study, "readers": readers, "cases": len(study.cases)})
    return page(request, "admin_home.html", admin=admin, rows=rows, csrf=admin_csrf(request, session))


@router.get("/studies/new")
def new_study(request: Request, kind: str = "vtt", session: Session = Depends(db)):
    admin = require_admin(request, session)
    if kind not in ("vtt", "teaching", "survey"):
        raise HTTPException(status_code=404)
    return page(request, f"admin_new_{kind}.html", admin=admin, csrf=admin_csrf(request, session),
                survey_template=studies.SURVEY_TEMPLATE, data_root=state_of(request).data_root)


def _folder(request: Request, text: str, file_ok: bool = False) -> str:
    """A dataset or run folder the admin typed, which must lie inside the server's data root."""
    root = state_of(request).data_root
    path = (root / text.strip()).resolve()
    if not text.strip() or not path.is_relative_to(root):
        raise UserError(f"{text!r}: give a folder inside the server's data root {root}")
    if not (path.is_dir() or (file_ok and path.is_file())):
        raise UserError(f"{path}: no such folder; give a folder made by pathosynth")
    return str(path)


def _counts(text: str, folder: str) -> dict[str, int]:
    counts = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        label, _, number = part.partition("=")
        if not number.strip().isdigit() or int(number) < 1:
            raise UserError(f"{folder}: write counts as label=number, e.g. tumour=25, non-tumour=25")
        counts[label.strip()] = int(number)
    if not counts:
        raise UserError(f"{folder}: say how many cases of which label, e.g. tumour=25, non-tumour=25")
    return counts


@router.post("/studies/vtt")
async def create_vtt(request: Request):
    # the number of folder rows is the admin's choice, so the fields are only known once read
    form = {key: str(value) for key, value in (await request.form()).items()}
    questions = [q for q in studies.QUESTIONS if form.get(f"ask-{q}")]
    study_id = await run_in_threadpool(_create_vtt, request, form, questions)
    return see_other(f"/admin/studies/{study_id}")


def _create_vtt(request: Request, form: dict[str, str], questions: list[str]) -> int:
    with state_of(request).sessions() as session:
        check_admin_csrf(request, session, form.get("csrf", ""))
        groups = []
        for index in range(4):
            text = form.get(f"folder-{index}", "").strip()
            if text:
                folder = _folder(request, text)
                groups.append(studies.CaseGroup(folder, _counts(form.get(f"counts-{index}", ""), folder),
                                                form.get(f"split-{index}", "").strip() or None))
        seed = int(form["seed"]) if form.get("seed", "").strip().isdigit() else 0
        survey = studies.SURVEY_TEMPLATE if form.get("with-survey") else None
        study = studies.create_vtt(session, form.get("name", ""), groups, questions=questions, seed=seed,
                                   instructions=form.get("instructions", ""), questionnaire=survey)
        return study.id


@router.post("/studies/survey")
def create_survey(request: Request, name: str = Form(""), items: str = Form(""), csrf: str = Form(""),
                  session: Session = Depends(db)):
    check_admin_csrf(request, session, csrf)
    study = studies.create_survey(session, name, parse_items(items) if items.strip() else studies.SURVEY_TEMPLATE)
    return see_other(f"/admin/studies/{study.id}")


def parse_items(text: str) -> list[dict]:
    """One item per line: `likert: text`, `free: text` or `both: text`."""
    items = []
    for number, line in enumerate(line for line in text.splitlines() if line.strip()):
        kind, _, question = line.partition(":")
        if kind.strip() not in ("likert", "free", "both") or not question.strip():
            raise UserError(f"questionnaire line {number + 1}: start it with likert:, free: or both:")
        items.append({"id": f"q{number + 1}", "text": question.strip(), "likert": kind.strip() in ("likert", "both"),
                      "free_text": kind.strip() in ("free", "both")})
    return items


@router.post("/studies/teaching")
def create_teaching(request: Request, name: str = Form(""), source: str = Form(""), base_scans: str = Form(""),
                    quiz_length: int = Form(10),
                    atypical_share: float = Form(0.15), csrf: str = Form(""), session: Session = Depends(db)):
    check_admin_csrf(request, session, csrf)
    study = create_teaching_study(session, state_of(request), name, _folder(request, source),
                                  base_scans=_folder(request, base_scans, file_ok=True) if base_scans.strip() else None,
                                  quiz_length=quiz_length, atypical_share=atypical_share)
    return see_other(f"/admin/studies/{study.id}")


def _study(session: Session, study_id: int) -> Study:
    study = session.get(Study, study_id)
    if study is None:
        raise HTTPException(status_code=404)
    return study


@router.get("/studies/{study_id}")
def study_page(request: Request, study_id: int, session: Session = Depends(db)):
    admin = require_admin(request, session)
    study = _study(session, study_id)
    progress = []
    for reader in study.readers:
        progress.append({"reader": reader, "link": str(request.base_url).rstrip("/") + _link(study, reader),
                         "done": _done_count(session, study, reader), "total": _total(session, study, reader)})
    return page(request, "admin_study.html", admin=admin, study=study, progress=progress,
                csrf=admin_csrf(request, session))


def _link(study: Study, reader: Reader) -> str:
    return f"/t/{reader.token}" if study.kind == "teaching" else f"/r/{reader.token}"


def _done_count(session: Session, study: Study, reader: Reader) -> int:
    table = {"vtt": Answer, "survey": SurveyAnswer, "teaching": TeachingCase}[study.kind]
    return session.scalar(select(func.count()).select_from(table).where(table.reader_id == reader.id))


def _total(session: Session, study: Study, reader: Reader) -> int | None:
    if study.kind == "vtt":
        return studies.case_count(session, reader)
    if study.kind == "survey":
        return len(study.questionnaire or [])
    return None


@router.post("/studies/{study_id}/readers")
def invite(request: Request, study_id: int, names: str = Form(""), csrf: str = Form(""),
           session: Session = Depends(db)):
    check_admin_csrf(request, session, csrf)
    studies.invite(session, _study(session, study_id), names.splitlines())
    return see_other(f"/admin/studies/{study_id}")


@router.post("/studies/{study_id}/open")
def set_open(request: Request, study_id: int, is_open: int = Form(...), csrf: str = Form(""),
             session: Session = Depends(db)):
    check_admin_csrf(request, session, csrf)
    study = _study(session, study_id)
    study.is_open = bool(is_open)
    session.commit()
    return see_other(f"/admin/studies/{study_id}")


def _rows(session: Session, study: Study) -> tuple[list[dict], list[str]]:
    if study.kind == "vtt":
        return studies.export_rows(session, study), list(studies.EXPORT_COLUMNS)
    if study.kind == "survey":
        return studies.survey_rows(session, study), list(studies.SURVEY_COLUMNS)
    return teaching_rows(session, study), list(TEACHING_COLUMNS)


@router.get("/studies/{study_id}/export.csv")
def export_csv(request: Request, study_id: int, session: Session = Depends(db)):
    require_admin(request, session)
    study = _study(session, study_id)
    rows, columns = _rows(session, study)
    return _csv_download(rows, columns, f"study-{study.id}-answers.csv")


@router.get("/studies/{study_id}/export.json")
def export_json(request: Request, study_id: int, session: Session = Depends(db)):
    require_admin(request, session)
    study = _study(session, study_id)
    rows, _columns = _rows(session, study)
    body = {"study": {"id": study.id, "name": study.name, "kind": study.kind, "questions": study.questions,
                      "classes": study.classes, "questionnaire": study.questionnaire},
            "answers": rows,
            "questionnaire_answers": studies.survey_rows(session, study) if study.kind != "survey" else []}
    return _download(json.dumps(body, indent=1), f"study-{study.id}-answers.json", "application/json")


@router.get("/studies/{study_id}/questionnaire.csv")
def export_survey(request: Request, study_id: int, session: Session = Depends(db)):
    require_admin(request, session)
    rows = studies.survey_rows(session, _study(session, study_id))
    return _csv_download(rows, list(studies.SURVEY_COLUMNS), f"study-{study_id}-questionnaire.csv")


def _csv_download(rows: list[dict], columns: list[str], name: str) -> Response:
    return _download(csv_text(rows, columns), name, "text/csv")


def _download(text: str, name: str, media_type: str) -> Response:
    return Response(content=text, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/studies/{study_id}/cases/{key}")
def case_image(request: Request, study_id: int, key: str, session: Session = Depends(db)):
    """A case's image as readers saw it, for the admin's results page."""
    require_admin(request, session)
    case = session.scalar(select(Case).where(Case.study_id == study_id, Case.key == key))
    if case is None:
        raise HTTPException(status_code=404)
    return Response(content=case.image, media_type="image/png")


@router.get("/studies/{study_id}/results")
def results(request: Request, study_id: int, session: Session = Depends(db)):
    admin = require_admin(request, session)
    study = _study(session, study_id)
    context = {"admin": admin, "study": study, "csrf": admin_csrf(request, session)}
    if study.kind == "vtt":
        rows = [dict(row, reader=f"{row['reader']} (#{row['reader_id']})")
                for row in studies.export_rows(session, study)]
        context["results"] = stats.study_results(rows, labels=study.classes or None) if rows else None
    elif study.kind == "teaching":
        context["teaching"] = teaching_summary(session, study)
    context["survey"] = studies.survey_summary(session, study)
    return page(request, "admin_results.html", **context)
