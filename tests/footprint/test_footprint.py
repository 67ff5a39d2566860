"""Footprint (issue 18): what each process imports, when workers start, library pages.

Real processes only: a fresh interpreter for import sets, a real `mentatctl serve` for the
worker start, this process's own mappings for the page release.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from conformance_corpus import payloads, protobuf_body
from mentatlab.governance.policies import PolicyRule, PolicySnapshot
from mentatlab.pipeline import workers
from mentatlab.receivers.decode import decode_otlp_protobuf
from mentatlab.server.memory import clean_library_mappings, release_startup_pages
from mentatlab.settings import load_settings
from serve_process import free_port, start_serve, stop, wait_ready

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _otlp_payload import make_request  # noqa: E402

WEB_AND_STORE = ("chdb", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "grpc",
                 "mentatlab.server", "mentatlab.storage")
"""Packages an ingest worker never needs: the store, the web stack, the control store."""


def _python(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, check=True, timeout=120).stdout.strip()


def test_a_worker_imports_neither_the_store_nor_the_web_stack(tmp_path: Path) -> None:
    body = tmp_path / "body.pb"
    body.write_bytes(make_request(50, seed=3))
    code = f"""
import json, sys
from mentatlab.pipeline import workers
from mentatlab.receivers.otlp_http import HttpLimits
from mentatlab.settings import load_settings
workers.init_worker(load_settings(data_dir={str(tmp_path / "data")!r}))
result = workers.run_otlp_http(open({str(body)!r}, "rb").read(), "application/x-protobuf",
                               None, HttpLimits(1 << 24, 1 << 26), None)
loaded = [m for m in {WEB_AND_STORE!r} if any(n == m or n.startswith(m + ".") for n in sys.modules)]
print(json.dumps({{"accepted": workers.arrow_from_ipc(result.table_ipc).num_rows,
                   "loaded": loaded}}))
"""
    out = json.loads(_python(code))
    assert out == {"accepted": 50, "loaded": []}


POLICIES = PolicySnapshot.of([
    PolicyRule("p.pii", 1, "pii", "pii_findings.exists(f, f.category == 'EMAIL_ADDRESS')",
               "log"),
    PolicyRule("p.big", 1, "big", "span.input_tokens >= 100", "alert")])


def test_a_pool_worker_refuses_pandas_and_gives_the_server_processs_table(
        tmp_path: Path) -> None:
    # The pool's initializer keeps pandas out of a worker (~50 MiB each). The worker's
    # tables must not change for it: the corpus, message content with PII (Presidio
    # loads in the worker) and policies, each against the in-process pipeline.
    bodies = [protobuf_body(path) for path in payloads()]
    bodies += [make_request(50, seed=3), make_request(40, seed=4, content=True)]
    for i, body in enumerate(bodies):
        (tmp_path / f"{i}.pb").write_bytes(body)
    (tmp_path / "policies.pickle").write_bytes(pickle.dumps(POLICIES))
    settings = load_settings(data_dir=tmp_path / "data")
    code = f"""
import json, pickle, sys
from pathlib import Path
from mentatlab.pipeline import workers
from mentatlab.receivers.otlp_http import HttpLimits
from mentatlab.settings import load_settings
folder = Path({str(tmp_path)!r})
workers.init_pool_worker(load_settings(data_dir=folder / "data"), {os.getpid()})
policies = pickle.loads((folder / "policies.pickle").read_bytes())
for i in range({len(bodies)}):
    result = workers.run_otlp_http((folder / f"{{i}}.pb").read_bytes(),
                                   "application/x-protobuf", None,
                                   HttpLimits(1 << 24, 1 << 26), None, policies)
    (folder / f"{{i}}.arrow").write_bytes(result.table_ipc or b"")
try:
    import pandas
    refused = False
except ModuleNotFoundError:
    refused = True
print(json.dumps({{"pandas_loaded": "pandas" in sys.modules, "refused": refused,
                   "presidio": "presidio_analyzer" in sys.modules}}))
"""
    out = json.loads(_python(code))
    assert out == {"pandas_loaded": False, "refused": True, "presidio": True}
    pipeline = workers.build_pipeline(settings)
    workers.use_policies(pipeline, POLICIES)
    drop = ["ingested_at_ns"]
    redacted = decided = 0
    for i, body in enumerate(bodies):
        expected = pipeline.run(decode_otlp_protobuf(body).spans).table
        ipc = (tmp_path / f"{i}.arrow").read_bytes()
        if not expected.num_rows:
            assert ipc == b""
            continue
        table = workers.arrow_from_ipc(ipc)
        assert table.drop_columns(drop).equals(expected.drop_columns(drop)), i
        redacted += sum(1 for f in table.column("pii_findings").to_pylist() if f)
        decided += sum(len(ids) for ids in table.column("policy_ids").to_pylist())
    assert redacted and decided, (redacted, decided)  # the content payload exercised both


def test_a_pool_worker_that_already_has_pandas_refuses_to_start(tmp_path: Path) -> None:
    code = f"""
import pandas
from mentatlab.pipeline import workers
from mentatlab.settings import load_settings
try:
    workers.init_pool_worker(load_settings(data_dir={str(tmp_path / "data")!r}), {os.getpid()})
except RuntimeError as exc:
    print(exc)
"""
    assert "Expected ['pandas'] not to be imported yet" in _python(code)


def test_presidio_loads_on_the_first_detection_not_when_the_detector_is_built() -> None:
    code = """
import sys
from mentatlab.governance.pii import PiiDetector
d = PiiDetector()
steps = ["presidio_analyzer" in sys.modules]
gate = d.may_contain(["no personal data here", "mail bob@example.com"])
steps.append("presidio_analyzer" in sys.modules)
found = d.detect("mail bob@example.com today")
steps.append("presidio_analyzer" in sys.modules)
print(steps, gate, [(f.category, f.start, f.end) for f in found])
"""
    assert _python(code) == ("[False, False, True] [False, True] "
                             "[('EMAIL_ADDRESS', 5, 20)]")


@pytest.mark.e2e
def test_workers_start_on_the_first_body_and_stop_when_idle(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    # default settings: two ingest workers, PII redaction on
    proc = start_serve(tmp_path / "data", port, log=log,
                       env={"MENTATLAB_INGEST_WORKERS": "2", "MENTATLAB_PII_MODE": "redact",
                            "MENTATLAB_INGEST_WORKERS_IDLE_S": "3"})
    try:
        wait_ready(proc, url, log)
        server = psutil.Process(proc.pid)
        time.sleep(1.0)
        assert server.children(recursive=True) == [], "no worker before the first body"
        trace_id = os.urandom(16)
        body = make_request(20, seed=5, trace_id=trace_id)
        response = httpx.post(f"{url}/v1/traces", content=body, timeout=60,
                              headers={"Content-Type": "application/x-protobuf"})
        assert response.status_code == 200, response.text
        children = server.children(recursive=True)
        workers = [p for p in children if p.ppid() != proc.pid]  # forked by the forkserver
        assert len(workers) == 2, [(p.pid, p.cmdline()) for p in children]
        assert "Started 2 ingest worker processes" in log.read_text()
        trace = httpx.get(f"{url}/api/v1/traces/{trace_id.hex()}",
                          params={"view": "timeline"}, timeout=30)
        assert trace.status_code == 200, trace.text
        assert trace.json()["num_spans"] == 20
        # idle for 3 s: the workers stop; the next body starts them again
        deadline = time.monotonic() + 30
        while any(p.is_running() for p in workers):
            assert time.monotonic() < deadline, "idle workers never stopped"
            time.sleep(0.2)
        assert "Stopping the ingest workers" in log.read_text()
        response = httpx.post(f"{url}/v1/traces", content=make_request(10, seed=6),
                              headers={"Content-Type": "application/x-protobuf"}, timeout=60)
        assert response.status_code == 200, response.text
        again = [p for p in server.children(recursive=True) if p.ppid() != proc.pid]
        assert len(again) == 2 and not {p.pid for p in again} & {p.pid for p in workers}
    finally:
        stop(proc)


def test_clean_library_mappings_keep_dirty_writable_and_anonymous_ones() -> None:
    smaps = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 1 /opt/lib/libbig.so
Rss:                 512 kB
Private_Dirty:         0 kB
Shared_Dirty:          0 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
7f0000100000-7f0000200000 r-xp 00100000 08:01 1 /opt/lib/libbig.so
Rss:                1024 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000200000-7f0000210000 r--p 00200000 08:01 1 /opt/lib/libbig.so
Rss:                  64 kB
Private_Dirty:        64 kB
Anonymous:            64 kB
7f0000210000-7f0000220000 rw-p 00210000 08:01 1 /opt/lib/libbig.so
Rss:                  64 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000300000-7f0000400000 r-xp 00000000 08:01 2 /opt/lib/libz.so.1.2
Rss:                   0 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000400000-7f0000500000 r--p 00000000 08:01 3 /data/spans.bin
Rss:                 100 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000500000-7f0000600000 r--s 00000000 08:01 4 /opt/lib/libshared.so
Rss:                 100 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000600000-7f0000700000 r--p 00000000 00:00 0
Rss:                 100 kB
Anonymous:           100 kB
"""
    found = clean_library_mappings(smaps)
    assert [(m.start, m.perms, m.rss_kib) for m in found] == [
        (0x7F0000000000, "r--p", 512), (0x7F0000100000, "r-xp", 1024)]


def test_released_pages_come_back_when_used() -> None:
    code = """
import pyarrow as pa, pyarrow.compute as pc
from mentatlab.server.memory import release_startup_pages
before = pc.sum(pa.array(range(1000))).as_py()
released = release_startup_pages()
after = pc.sum(pa.array(range(1000))).as_py()
print(released > 0, before == after == 499500)
"""
    assert _python(code) == "True True"
    # and in this process, where pytest has loaded libraries of its own
    assert release_startup_pages() >= 0
    assert clean_library_mappings() == [] or all(m.dirty_kib == 0
                                                 for m in clean_library_mappings())


def test_a_control_store_at_head_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'control.db'}"
    code = """
import sys
from sqlalchemy import create_engine, text
from mentatlab.storage.control.migrate import migrate_control_store, script_heads
migrate_control_store(sys.argv[1])
with create_engine(sys.argv[1]).connect() as c:
    at = {r[0] for r in c.execute(text("SELECT version_num FROM alembic_version"))}
print("alembic" in sys.modules, at == script_heads())
"""
    assert _python(code, url) == "True True"  # a new store: Alembic creates it
    assert _python(code, url) == "False True"  # at head: Alembic is not even imported


def test_a_control_store_behind_head_is_still_upgraded(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from mentatlab.storage.control.migrate import migrate_control_store, script_heads

    url = f"sqlite:///{tmp_path / 'control.db'}"
    heads = script_heads()
    assert heads is not None and len(heads) == 1
    migrate_control_store(url, "0008_retention")
    migrate_control_store(url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            at = {r[0] for r in connection.execute(text("SELECT version_num FROM alembic_version"))}
    finally:
        engine.dispose()
    assert at == heads != {"0008_retention"}
