"""The address `pathosynth serve` prints, opened as is: a page that sends each visitor on their way
(readers and trainees to the personal link they were sent, organisers to the login)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pathosynth.reader.app import page

router = APIRouter()


@router.get("/")
def landing(request: Request):
    # nothing from the database: the page must not say whether any study or admin exists
    return page(request, "home.html")
