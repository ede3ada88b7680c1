"""Load test of the reader app: concurrent readers, double submits and a server killed midway.

The acceptance test of the issue: "50 concurrent readers x 200 answers, 10% double submits, the
server killed and restarted midway, reporting 0 lost and 0 duplicated answers". For each database
(SQLite file, PostgreSQL on loopback):

1. a Visual Turing Test of N cases (half real, half synthetic 32x32 images) is built through the
   Python API, and R readers are invited;
2. `pathosynth serve` is started as a subprocess on a free loopback port;
3. one client thread per reader answers its cases in order (POST /r/{token}/answer). An answer is
   acknowledged only by the server's 303; on a connection error or a 5xx the client waits and
   sends the same answer again until it is acknowledged (a retry may itself be a double submit,
   when the first attempt was stored but its reply was lost). A share of the answers is sent
   twice, the second copy on another connection before the first reply is read, as a double
   click does;
4. when half of all answers are acknowledged the server gets SIGKILL (no graceful stop: whatever
   it had in flight is cut off) and is started again on the same port and database;
5. the database is then read directly and compared with what the clients were told:
   lost = acknowledged answers with no row, duplicated = (reader, case) pairs with more than one
   row, mismatched = rows whose origin or confidence differs from the acknowledged answer.

Latency is per answer, from its first attempt to its 303 (what a reader waits, retries included);
answers/s is acknowledged answers over the whole load phase, the downtime included. The downtime
is what the clients saw: from the kill to the first 303 of a request sent after it. The clients
share the machine with the server (and PostgreSQL): on a 2-core machine the numbers are a floor.

Usage: python benchmarks/reader_load.py [--readers 50] [--answers 200] [--double-share 0.1]
                                        [--db sqlite,postgresql] [--no-kill] [--seed 0]
                                        [--postgres-url URL]
Exits non-zero when an answer is lost, duplicated or mismatched, or not every answer was
acknowledged. The full default run takes a few minutes per database on a 2-core machine.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import platform
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pathosynth.data.dataset import DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.splits import SplitPlan
from pathosynth.reader import studies
from pathosynth.reader.db import open_database
from pathosynth.reader.security import csrf_token
from pathosynth.runtime import cpu_name

DEFAULT_POSTGRES = "postgresql+psycopg://pathosynth:pathosynth@127.0.0.1:5432/pathosynth"
DATABASES = ("sqlite", "postgresql")
CASE_SIDE = 32
REQUEST_TIMEOUT_S = 60  # a reply slower than this counts as lost and the answer is sent again
GIVE_UP_AFTER_S = 180  # one answer retried this long means the server is not coming back
READY_TIMEOUT_S = 60


# ----------------------------------------------------------------------------- the study

@dataclass
class ReaderLink:
    token: str
    csrf: str


def write_dataset(folder: Path, origin: str, counts: dict[str, int], rng: np.random.Generator) -> Path:
    """A tiny dataset folder: one 32x32 16-bit slice per patient, tumours as a bright square."""
    info = DatasetInfo(name=folder.name, modality="MR", dimensionality=2, classes=["healthy", "tumour"],
                       intensity_unit="arbitrary", source={"synthetic": True} if origin == "synthetic" else {})
    provenance = {"model": "reader-load", "seed": 0} if origin == "synthetic" else None
    with DatasetWriter(folder, info) as writer:
        for label, count in counts.items():
            for i in range(count):
                pixels = rng.integers(0, 1000, (CASE_SIDE, CASE_SIDE))
                boxes = []
                if label == "tumour":
                    pixels[10:20, 12:22] += 3000
                    boxes = [[12, 10, 22, 20]]
                sample_id = f"{origin}-{label}-{i}"
                writer.add(Sample(id=sample_id, patient_id=sample_id, image="", label=label, split="test",
                                  boxes=boxes, synthetic=provenance),
                           MedicalImage(pixels.astype(np.uint16), (1.0, 1.0)))
        return writer.commit(SplitPlan())


def halves(total: int) -> tuple[int, int]:
    return total // 2, total - total // 2


def write_folders(scratch: Path, cases: int, seed: int) -> list[studies.CaseGroup]:
    """A real and a synthetic folder holding exactly `cases` images, each half tumour, half healthy."""
    rng = np.random.default_rng(seed)
    groups = []
    for origin, count in zip(("real", "synthetic"), halves(cases)):
        tumour, healthy = halves(count)
        counts = {"tumour": tumour, "healthy": healthy}
        folder = write_dataset(scratch / origin, origin, counts, rng)
        groups.append(studies.CaseGroup(folder=str(folder), counts=counts))
    return groups


def build_study(url: str, groups: list[studies.CaseGroup], readers: int, seed: int) -> list[ReaderLink]:
    """The study and its readers, straight through the Python API (the admin pages would be slower
    and are not what is measured); each reader's CSRF field is the one its case pages carry."""
    engine, sessions = open_database(url)
    try:
        with sessions() as session:
            study = studies.create_vtt(session, "reader load", groups, questions=["origin", "confidence"],
                                       seed=seed)
            invited = studies.invite(session, study, [f"Reader {i + 1}" for i in range(readers)])
            secret = studies.server_secret(session)
            return [ReaderLink(r.token, csrf_token(secret, f"reader:{r.token}")) for r in invited]
    finally:
        engine.dispose()  # the server must be the only writer while the clients run


@contextmanager
def fresh_database(kind: str, scratch: Path, postgres_url: str):
    """A database URL of its own for one run: a SQLite file, or a PostgreSQL database dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{scratch / 'studies.sqlite'}"
        return
    server = make_url(postgres_url)
    name = f"reader_load_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# ----------------------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pathosynth_command() -> str:
    # the console script installed next to this interpreter (the project's virtualenv)
    beside = Path(sys.executable).parent / "pathosynth"
    return str(beside) if beside.exists() else "pathosynth"


class Server:
    """`pathosynth serve` as a subprocess whose output goes to a log file (read when things fail)."""

    def __init__(self, url: str, port: int, data_root: Path, log_path: Path):
        self.url, self.port, self.data_root, self.log_path = url, port, data_root, log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> float:
        """Start it and wait until it answers HTTP; returns the seconds that took."""
        began = time.perf_counter()
        with self.log_path.open("a") as log:
            log.write(f"\n===== start {self.starts + 1} =====\n")
            log.flush()
            self.process = subprocess.Popen(
                [pathosynth_command(), "serve", "--db", self.url, "--port", str(self.port),
                 "--data-root", str(self.data_root)],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.starts += 1
        self._wait_ready()
        return time.perf_counter() - began

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/r/not-a-token")  # any HTTP reply (a 404) means it serves
                connection.getresponse().read()
                connection.close()
                return
            except (OSError, http.client.HTTPException):
                time.sleep(0.02)
        raise RuntimeError(f"the server did not answer within {READY_TIMEOUT_S} s:\n{self.log_tail()}")

    def kill(self) -> float:
        """SIGKILL, as a crash or an OOM kill would; returns the moment (perf_counter) it happened."""
        moment = time.perf_counter()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        return moment

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def logged_errors(self) -> list[str]:
        """Lines of the log that report a failure (unhandled errors, tracebacks)."""
        return [line for line in self.log_path.read_text(errors="replace").splitlines()
                if re.search(r"\bERROR\b|Traceback|unhandled error", line)]


# ----------------------------------------------------------------------------- the clients

class Connection:
    """One keep-alive HTTP connection; a failure closes it and the next request opens a new one."""

    HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}

    def __init__(self, port: int):
        self.port = port
        self.http: http.client.HTTPConnection | None = None

    def send(self, path: str, body: str) -> bool:
        try:
            if self.http is None:
                self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
            self.http.request("POST", path, body=body, headers=self.HEADERS)
            return True
        except (OSError, http.client.HTTPException):
            self.close()
            return False

    def receive(self) -> int | None:
        """The reply's status, or None when the connection failed (refused, reset, timed out)."""
        try:
            response = self.http.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self.close()
            return None

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        self.http = None


def submit(connections: list[Connection], path: str, body: str) -> list[int | None]:
    """Send the same form on every connection before reading any reply (a double click sends the
    second copy while the first is still being stored); a status per connection."""
    sent = [connection.send(path, body) for connection in connections]
    return [connection.receive() if ok else None for connection, ok in zip(connections, sent)]


@dataclass
class Tally:
    """What the clients were told, shared by all client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: dict = field(default_factory=dict)  # (reader index, number) -> (origin, confidence)
    latencies: list = field(default_factory=list)  # seconds, first attempt -> 303
    acks: list = field(default_factory=list)  # (the acknowledged attempt's start, its 303), perf_counter
    double_submits: int = 0
    retries: int = 0
    server_errors: int = 0  # 5xx replies
    rejected: list = field(default_factory=list)  # (reader, number, status): 4xx, the form was refused
    given_up: int = 0

    def count(self) -> int:
        return len(self.acknowledged)

    def acknowledge(self, key: tuple, value: tuple, first_try: float, attempt: float, acked: float) -> None:
        with self.lock:
            self.acknowledged.setdefault(key, value)  # the first acknowledged value is the one that must stand
            self.latencies.append(acked - first_try)
            self.acks.append((attempt, acked))

    def add(self, **counts) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def answer_all(index: int, link: ReaderLink, cases: int, port: int, double_share: float, seed: int,
               tally: Tally, start: threading.Barrier) -> None:
    """One reader answering every case in order, as fast as the server lets it."""
    rng = random.Random(seed * 1_000_003 + index)
    path = f"/r/{link.token}/answer"
    main = Connection(port)
    start.wait()
    for number in range(1, cases + 1):
        origin, confidence = rng.choice(studies.ORIGINS), rng.choice(studies.CONFIDENCE)
        body = urlencode({"csrf": link.csrf, "number": number, "origin": origin, "confidence": confidence})
        double = rng.random() < double_share
        if not send_until_acknowledged(index, number, (origin, confidence), path, body, double, main, tally):
            break
    main.close()


def send_until_acknowledged(index: int, number: int, value: tuple, path: str, body: str, double: bool,
                            main: Connection, tally: Tally) -> bool:
    """Send one answer (twice at first when `double`) and again after every failure until a 303;
    False when the answer was refused or the server never came back."""
    first_try = time.perf_counter()
    for attempt in range(10**6):
        attempt_start = time.perf_counter()
        if double and attempt == 0:
            spare = Connection(main.port)  # a second connection, as a browser's second click opens
            statuses = submit([main, spare], path, body)
            spare.close()
            tally.add(double_submits=1)
        else:
            statuses = submit([main], path, body)
        if 303 in statuses:
            tally.acknowledge((index, number), value, first_try, attempt_start, time.perf_counter())
            return True
        refused = [s for s in statuses if s is not None and s < 500]
        if refused:  # retrying a refused form cannot succeed: the benchmark or the app is wrong
            with tally.lock:
                tally.rejected.append((index, number, refused[0]))
            return False
        tally.add(retries=1, server_errors=sum(1 for s in statuses if s is not None))
        if time.perf_counter() - first_try > GIVE_UP_AFTER_S:
            tally.add(given_up=1)
            return False
        time.sleep(min(0.5, 0.02 * 2 ** attempt) * random.uniform(0.5, 1.0))  # back off, not in lockstep
    return False


# ----------------------------------------------------------------------------- one run

@dataclass
class Outage:
    killed_at: float | None = None
    restart_s: float | None = None
    error: str | None = None


def kill_midway(server: Server, tally: Tally, threshold: int, finished: threading.Event, outage: Outage) -> None:
    """Wait for `threshold` acknowledged answers, then SIGKILL the server and start it again."""
    while tally.count() < threshold:
        if finished.is_set():
            return
        time.sleep(0.005)
    outage.killed_at = server.kill()
    try:
        outage.restart_s = server.start()
    except RuntimeError as exc:
        outage.error = str(exc)


def client_downtime(tally: Tally, killed_at: float | None) -> float | None:
    """From the kill to the first 303 of a request sent after it."""
    if killed_at is None:
        return None
    after = [acked for attempt, acked in tally.acks if attempt >= killed_at]
    return min(after) - killed_at if after else None


def stored_answers(url: str, tokens: dict[str, int]) -> tuple[list[tuple], int]:
    """Every answer row as (reader index, number, origin, confidence), and the count of (reader,
    case) pairs with more than one row (the unique constraint should make it 0; counted anyway)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT r.token, a.position, ans.origin, ans.confidence FROM answers ans "
                "JOIN readers r ON r.id = ans.reader_id "
                "JOIN assignments a ON a.reader_id = ans.reader_id AND a.case_id = ans.case_id")).all()
            duplicated = connection.execute(text(
                "SELECT COUNT(*) FROM (SELECT reader_id, case_id FROM answers "
                "GROUP BY reader_id, case_id HAVING COUNT(*) > 1) AS pairs")).scalar_one()
    finally:
        engine.dispose()
    return [(tokens[token], position + 1, origin, confidence) for token, position, origin, confidence in rows], \
        duplicated


def compare(tally: Tally, rows: list[tuple]) -> dict:
    stored = {(reader, number) for reader, number, _, _ in rows}
    mismatched = sum(1 for reader, number, origin, confidence in rows
                     if (reader, number) in tally.acknowledged
                     and tally.acknowledged[(reader, number)] != (origin, confidence))
    return {"lost": sum(1 for key in tally.acknowledged if key not in stored),
            "mismatched": mismatched,
            # stored but never acknowledged: only possible for an answer the client gave up on
            "unacknowledged_rows": len(stored - set(tally.acknowledged))}


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else math.nan


def database_version(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite {sqlite3.sqlite_version}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return f"PostgreSQL {connection.execute(text('SHOW server_version')).scalar_one()}"
    finally:
        engine.dispose()


def run_database(kind: str, args, scratch: Path, groups: list[studies.CaseGroup]) -> dict:
    folder = scratch / kind
    folder.mkdir()
    with fresh_database(kind, folder, args.postgres_url) as url:
        print(f"[{kind}] building a study of {args.answers} cases for {args.readers} readers ...", file=sys.stderr)
        links = build_study(url, groups, args.readers, args.seed)
        server = Server(url, free_port(), scratch, folder / "server.log")
        try:
            server.start()
            row = drive(kind, server, links, args)
        finally:
            server.stop()
        row["version"] = database_version(url)
        row["server_errors_logged"] = server.logged_errors()
        print(f"[{kind}] checking the database ...", file=sys.stderr)
        rows, row["duplicated"] = stored_answers(url, {link.token: i for i, link in enumerate(links)})
        row.update(compare(row.pop("tally"), rows))
        row["rows"] = len(rows)
    return row


def drive(kind: str, server: Server, links: list[ReaderLink], args) -> dict:
    """The clients' load, with the kill and restart; what they were told, and how fast."""
    tally, outage, finished = Tally(), Outage(), threading.Event()
    expected = len(links) * args.answers
    start = threading.Barrier(len(links) + 1)
    clients = [threading.Thread(target=answer_all, daemon=True, name=f"reader-{i}",
                                args=(i, link, args.answers, server.port, args.double_share, args.seed, tally, start))
               for i, link in enumerate(links)]
    killer = threading.Thread(target=kill_midway, daemon=True, name="killer",
                              args=(server, tally, expected // 2, finished, outage))
    for thread in clients:
        thread.start()
    print(f"[{kind}] {len(links)} readers x {args.answers} answers on port {server.port}"
          f"{'' if args.no_kill else ', SIGKILL at half'} ...", file=sys.stderr)
    began = time.perf_counter()
    start.wait()
    if not args.no_kill:
        killer.start()
    for thread in clients:
        thread.join()
    elapsed = time.perf_counter() - began
    finished.set()
    if not args.no_kill:
        killer.join()
    if outage.error:
        print(f"[{kind}] the server did not come back: {outage.error}", file=sys.stderr)
    print(f"[{kind}] {tally.count()} of {expected} answers acknowledged in {elapsed:.1f} s", file=sys.stderr)
    return {"database": kind, "readers": len(links), "expected": expected, "answers": tally.count(),
            "double_submits": tally.double_submits, "retries": tally.retries, "server_errors": tally.server_errors,
            "rejected": tally.rejected, "given_up": tally.given_up, "killed": outage.killed_at is not None,
            "downtime_s": client_downtime(tally, outage.killed_at), "restart_s": outage.restart_s,
            "answers_per_s": tally.count() / elapsed, "elapsed_s": elapsed,
            "p50_ms": 1000 * percentile(tally.latencies, 0.50), "p95_ms": 1000 * percentile(tally.latencies, 0.95),
            "p99_ms": 1000 * percentile(tally.latencies, 0.99),
            "max_ms": 1000 * max(tally.latencies, default=math.nan), "tally": tally}


# ----------------------------------------------------------------------------- report

def failed(row: dict) -> bool:
    return bool(row["lost"] or row["duplicated"] or row["mismatched"] or row["answers"] < row["expected"])


def table(rows: list[dict]) -> list[str]:
    lines = ["| database | readers | answers | double submits | retries | kill/restart downtime s | lost "
             "| duplicated | mismatched | answers/s | p50 ms | p95 ms | p99 ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        downtime = "no kill" if not r["killed"] else ("-" if r["downtime_s"] is None else f"{r['downtime_s']:.2f}")
        answers = f"{r['answers']}" if r["answers"] == r["expected"] else f"{r['answers']} of {r['expected']}"
        lines.append(f"| {r['database']} | {r['readers']} | {answers} | {r['double_submits']} | {r['retries']} "
                     f"| {downtime} | {r['lost']} | {r['duplicated']} | {r['mismatched']} "
                     f"| {r['answers_per_s']:.0f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} |")
    return lines


def notes(r: dict) -> list[str]:
    restart = f"restart took {r['restart_s']:.2f} s, " if r["restart_s"] is not None else ""
    lines = [f"{r['database']} ({r['version']}): load phase {r['elapsed_s']:.1f} s, {restart}"
             f"slowest answer {r['max_ms']:.0f} ms, 5xx replies {r['server_errors']}, "
             f"rows {r['rows']}, stored but unacknowledged {r['unacknowledged_rows']}"]
    if r["rejected"]:
        reader, number, status = r["rejected"][0]
        lines.append(f"  {len(r['rejected'])} answers refused by the server, e.g. reader {reader} case {number}: "
                     f"HTTP {status}")
    if r["given_up"]:
        lines.append(f"  {r['given_up']} answers given up after {GIVE_UP_AFTER_S} s of retries")
    if r["server_errors_logged"]:
        lines.append(f"  the server logged {len(r['server_errors_logged'])} error lines, first: "
                     f"{r['server_errors_logged'][0][:200]}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--readers", type=int, default=50, help="concurrent readers (default 50)")
    parser.add_argument("--answers", type=int, default=200, help="cases per reader, all answered (default 200)")
    parser.add_argument("--double-share", type=float, default=0.1,
                        help="share of answers sent twice at once (default 0.1)")
    parser.add_argument("--db", default=",".join(DATABASES), help="sqlite, postgresql or both (default both)")
    parser.add_argument("--no-kill", action="store_true", help="do not kill the server midway (for comparison)")
    parser.add_argument("--seed", type=int, default=0, help="the answers' and the images' seed")
    parser.add_argument("--postgres-url", default=os.environ.get("PATHOSYNTH_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="a PostgreSQL server whose role may CREATE DATABASE; a database is made for "
                             "the run and dropped after (default: $PATHOSYNTH_TEST_POSTGRES_URL or "
                             f"{DEFAULT_POSTGRES})")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.db.split(",") if k.strip()]
    if not kinds or set(kinds) - set(DATABASES):
        parser.error(f"--db {args.db!r}: choose among {', '.join(DATABASES)}")
    if args.readers < 1 or args.answers < 4 or not 0 <= args.double_share <= 1:
        parser.error("give --readers >= 1, --answers >= 4 (both real and synthetic cases of each label) "
                     "and --double-share between 0 and 1")

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="reader-load-") as scratch_name:
        scratch = Path(scratch_name)
        groups = write_folders(scratch, args.answers, args.seed)
        for kind in kinds:
            rows.append(run_database(kind, args, scratch, groups))

    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {args.readers} readers x {args.answers} answers, "
          f"double-submit share {args.double_share}, {'no kill' if args.no_kill else 'SIGKILL + restart at half'}, "
          f"seed {args.seed}")
    print()
    for line in table(rows):
        print(line)
    print()
    for row in rows:
        for line in notes(row):
            print(line)
    bad = [row["database"] for row in rows if failed(row)]
    if bad:
        print(f"FAILED on {', '.join(bad)}: answers lost, duplicated, mismatched or not acknowledged")
        sys.exit(1)


if __name__ == "__main__":
    main()
