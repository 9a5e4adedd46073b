"""Two hub workers starting at the same moment on a fresh database both come up.

Without the start-up lock both run Alembic's first migration together: both see
no ``alembic_version`` table, both create it, and one dies (an IntegrityError on
PostgreSQL, "table alembic_version already exists" on SQLite).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from quote2cash.errors import HubError
from quote2cash.store.db import alembic_config, make_engine, migrate, startup_lock

# A worker: get ready (imports, engine, config), say so, wait for the common start, start up.
WORKER = r"""
import sys, time
from pathlib import Path

mode, url, ready, go, executor = sys.argv[1:6]
if mode == "hub":
    from quote2cash.config import load_config
    from quote2cash.flows import launch_hub
    from quote2cash.sandbox.seed import SANDBOX_ENV, hub_config

    nowhere = "http://127.0.0.1:9"  # start-up does not call the systems
    config = load_config(
        data=hub_config(nowhere, nowhere, nowhere, url), env={**SANDBOX_ENV, "Q2C_EXECUTOR_ID": executor}
    )

    def start():
        launch_hub(config).shutdown()
else:
    from quote2cash.store.db import make_engine, migrate

    engine = make_engine(url)

    def start():
        migrate(engine)
        engine.dispose()

Path(ready).touch()
go_file = Path(go)
while not go_file.exists():
    time.sleep(0.001)
at = float(go_file.read_text())
while time.time() < at:
    pass
start()
print("started", flush=True)
"""

HOLDER = r"""
import sys
from quote2cash.errors import HubError
from quote2cash.store.db import make_engine, startup_lock

try:
    with startup_lock(make_engine(sys.argv[1]), timeout=float(sys.argv[2])):
        print("acquired")
except HubError as exc:
    print("timed out:", exc.message)
"""


def _start_together(url: str, mode: str, tmp_path: Path, workers: int = 2) -> list[tuple[int, str]]:
    """Start ``workers`` processes at the same moment; their exit codes and output."""
    procs = []
    for n in range(workers):
        log = (tmp_path / f"worker-{n}.log").open("wb")
        procs.append(
            (
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        WORKER,
                        mode,
                        url,
                        str(tmp_path / f"ready-{n}"),
                        str(tmp_path / "go"),
                        f"worker-{n}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                ),
                log,
            )
        )
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{n}").exists() for n in range(workers)):
            assert time.monotonic() < deadline, "workers did not get ready in 120 s"
            assert all(p.poll() is None for p, _ in procs), _logs(tmp_path, workers)
            time.sleep(0.01)
        tmp = tmp_path / "go.tmp"
        tmp.write_text(repr(time.time() + 0.25))
        tmp.rename(tmp_path / "go")  # atomic: a worker never reads a half-written time
        deadline = time.monotonic() + 120  # a start takes seconds; longer is a deadlock
        for p, _ in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(
                    "a worker was still starting after 120 s (deadlock?)\n" + _logs(tmp_path, workers)
                )
        return [(p.returncode, (tmp_path / f"worker-{n}.log").read_text()) for n, (p, _) in enumerate(procs)]
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()


def _logs(tmp_path: Path, workers: int) -> str:
    return "\n".join(
        f"--- worker {n} ---\n{(tmp_path / f'worker-{n}.log').read_text(errors='replace')}"
        for n in range(workers)
    )


def _assert_at_head(url: str, *, dbos: bool) -> None:
    engine = make_engine(url)
    try:
        heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
        with engine.connect() as conn:
            assert set(MigrationContext.configure(conn).get_current_heads()) == heads
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
            if dbos:
                table = "dbos_migrations" if url.startswith("sqlite") else "dbos.dbos_migrations"
                versions = conn.execute(sa.text(f"SELECT version FROM {table}")).scalars().all()
                assert len(versions) == 1
                assert versions[0] > 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("mode", ["migrate", pytest.param("hub", marks=pytest.mark.slow)])
def test_two_workers_starting_together_on_a_fresh_database_both_start(
    db_url: str, mode: str, tmp_path: Path
) -> None:
    """``migrate``: the Alembic upgrade alone; ``hub``: a whole hub launch (migrations and DBOS)."""
    results = _start_together(db_url, mode, tmp_path)
    assert [code for code, _ in results] == [0, 0], _logs(tmp_path, len(results))
    assert all("started" in out for _, out in results)
    _assert_at_head(db_url, dbos=mode == "hub")


def test_the_lock_is_reentrant_in_one_process(db_url: str) -> None:
    """``Hub.launch`` may hold the lock around ``migrate``, which takes it again."""
    outer, inner = make_engine(db_url), make_engine(db_url)
    try:
        with startup_lock(outer, timeout=5), startup_lock(inner, timeout=5):
            migrate(inner)
        migrate(outer)  # released: taken again at once
    finally:
        outer.dispose()
        inner.dispose()
    _assert_at_head(db_url, dbos=False)


def test_another_process_waits_for_the_lock_and_gives_up_after_its_timeout(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with startup_lock(engine):
            started = time.monotonic()
            held = subprocess.run(
                [sys.executable, "-c", HOLDER, db_url, "1.5"], capture_output=True, text=True, timeout=120
            )
            waited = time.monotonic() - started
        assert held.returncode == 0, held.stderr
        assert held.stdout.startswith("timed out: another hub worker has held the start-up lock"), held.stdout
        assert waited >= 1.5
    finally:
        engine.dispose()


def test_the_timeout_is_a_hub_error_in_process_too(db_url: str) -> None:
    """Another thread of the same process waits like another process would."""
    import threading

    engine = make_engine(db_url)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with startup_lock(engine):
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(30)
        with pytest.raises(HubError, match="start-up lock"), startup_lock(engine, timeout=0.3):
            pass
    finally:
        release.set()
        holder.join()
        engine.dispose()
