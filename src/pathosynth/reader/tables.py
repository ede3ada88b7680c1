"""The reader app's database tables (SQLAlchemy 2 ORM); the schema itself is owned by the Alembic
migrations in `migrations/versions/`, and a test checks that the two agree.

A study holds its cases' rendered images (`Case.image`), so serving never touches the source
folders: the time to serve a case cannot depend on where or in which format it came from, and a
study survives its source folders being moved.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Admin(Base):
    __tablename__ = "admins"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AdminSession(Base):
    """A logged-in admin; the cookie holds `token`, and the row lets a logout or restart end it."""

    __tablename__ = "admin_sessions"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Setting(Base):
    """Server-wide values that must survive restarts (the secret that signs CSRF tokens)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # "vtt", "teaching" or "survey"
    # which questions readers answer: origin (real/synthetic), label (class), confidence (1-5)
    questions: Mapped[list] = mapped_column(JSON, default=list)
    classes: Mapped[list] = mapped_column(JSON, default=list)
    instructions: Mapped[str] = mapped_column(Text, default="")
    # teaching: the case maker (run or pool folder), quiz length and atypical share
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    questionnaire: Mapped[list | None] = mapped_column(JSON, nullable=True)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cases: Mapped[list[Case]] = relationship(back_populates="study", order_by="Case.id")
    readers: Mapped[list[Reader]] = relationship(back_populates="study", order_by="Reader.id")


class Case(Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(40))  # "case-017": the name in exports, never served
    truth_origin: Mapped[str] = mapped_column(String(20))
    truth_label: Mapped[str | None] = mapped_column(String(80), nullable=True)
    source: Mapped[dict] = mapped_column(JSON)  # dataset folder, sample id, provenance
    # deferred: listing a study's cases must not read every image
    image: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    study: Mapped[Study] = relationship(back_populates="cases")
    __table_args__ = (UniqueConstraint("study_id", "key"),)


class Reader(Base):
    """A reader (Visual Turing Test, questionnaire) or trainee (teaching) with a personal link."""

    __tablename__ = "readers"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    study: Mapped[Study] = relationship(back_populates="readers")


class Assignment(Base):
    """A reader's own case order, drawn once when the reader is invited so it never changes."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    first_shown_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (UniqueConstraint("reader_id", "position"), UniqueConstraint("reader_id", "case_id"))


class Answer(Base):
    """One reader's answer to one case; the unique pair makes a double submit a no-op."""

    __tablename__ = "answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    origin: Mapped[str | None] = mapped_column(String(20), nullable=True)
    label: Mapped[str | None] = mapped_column(String(80), nullable=True)
    confidence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("reader_id", "case_id"),)


class SurveyAnswer(Base):
    """One questionnaire item answered by one reader: a Likert value, free text, or both."""

    __tablename__ = "survey_answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), index=True)
    item: Mapped[str] = mapped_column(String(40))
    likert: Mapped[int | None] = mapped_column(Integer, nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("reader_id", "item"),)


class TeachingCase(Base):
    """A case made for a trainee, on request or as a quiz question, with its answer once given."""

    __tablename__ = "teaching_cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(20))  # "request" or "quiz"
    label: Mapped[str | None] = mapped_column(String(80), nullable=True)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    boxes: Mapped[list] = mapped_column(JSON, default=list)
    canvas_boxes: Mapped[list] = mapped_column(JSON, default=list)  # the boxes on the served image
    typical: Mapped[bool] = mapped_column(Boolean, default=True)
    provenance: Mapped[dict] = mapped_column(JSON, default=dict)
    image: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    outlined: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # the same case with its lesion boxed
    answer: Mapped[str | None] = mapped_column(String(80), nullable=True)
    correct: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LoginAttempt(Base):
    """An admin login that has not succeeded (a wrong password, or one still being checked): what the
    login throttle counts, per user name and per client address, over its window."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
