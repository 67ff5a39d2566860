"""TLS on both listeners of a real ``mentatctl serve``, with a throwaway CA made here.

OTLP/HTTP and REST over HTTPS, OTLP/gRPC over TLS with the real OpenTelemetry exporters,
API keys required on both; plaintext clients and clients trusting another CA are refused;
mutual TLS with ``tls_client_ca_file``; bad TLS files stop ``serve`` with exit code 2 and a
message naming the setting.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mentatlab
from mentatlab.errors import ConfigError
from mentatlab.server.components import open_control_store
from mentatlab.server.tls import load_tls
from mentatlab.settings import load_settings
from serve_process import free_port, start_serve, stop, wait_ready
from tls_pki import Pki, make_pki

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _no_requests_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests (under the OTLP/HTTP exporter) lets these override the CA the exporter sets
    # on its session (psf/requests#3829); docs/security.md tells users the same.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def client_context(ca: Path, cert: Path | None = None) -> ssl.SSLContext:
    """What a client trusting ``ca`` (and presenting ``cert``, key beside it) uses."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(cert, cert.with_suffix(".key"))
    return context


@dataclass
class TlsServer:
    proc: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log: Path
    trusted: ssl.SSLContext
    """What a client this server accepts connects with."""
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def tls_env(pki: Pki, **extra: Path) -> dict[str, str]:
    env = {"MENTATLAB_TLS_CERT_FILE": str(pki.server.cert),
           "MENTATLAB_TLS_KEY_FILE": str(pki.server.key), "MENTATLAB_LOG_LEVEL": "WARNING",
           "MENTATLAB_AUTH_REQUIRED": "false"}
    env.update({f"MENTATLAB_{name.upper()}": str(path) for name, path in extra.items()})
    return env


def run_tls_server(folder: Path, env: dict[str, str], ready: ssl.SSLContext,
                   keys: dict[str, str] | None = None) -> Iterator[TlsServer]:
    http_port, grpc_port, log = free_port(), free_port(), folder / "server.log"
    proc = start_serve(folder / "data", http_port, grpc_port=grpc_port, log=log, env=env)
    try:
        wait_ready(proc, f"https://127.0.0.1:{http_port}", log, verify=ready)
        yield TlsServer(proc, http_port, grpc_port, log, ready, keys or {})
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """TLS on both listeners, authentication required, an ingest and a read key of acme."""
    folder = tmp_path_factory.mktemp("tls-server")
    control = open_control_store(load_settings(data_dir=folder / "data"))
    try:
        control.create_org("Acme", "acme")
        keys = {role: control.create_api_key("acme", None, role, role=role).key
                for role in ("ingest", "read")}
    finally:
        control.close()
    yield from run_tls_server(folder, {**tls_env(pki), "MENTATLAB_AUTH_REQUIRED": "true"},
                              client_context(pki.ca), keys)


@pytest.fixture(scope="module")
def mtls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """Mutual TLS: clients need a certificate the test CA signed (auth off, loopback)."""
    yield from run_tls_server(tmp_path_factory.mktemp("mtls-server"),
                              tls_env(pki, tls_client_ca_file=pki.ca),
                              client_context(pki.ca, pki.client.cert))


def make_spans(num_spans: int = 3) -> list[ReadableSpan]:
    """Real SDK spans of one trace: a root and its children."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "tls-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tls.test")
    with tracer.start_as_current_span("run"):
        for i in range(num_spans - 1):
            with tracer.start_as_current_span(f"step-{i}"):
                pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def trace_hex(spans: list[ReadableSpan]) -> str:
    context = spans[0].context
    assert context is not None
    return f"{context.trace_id:032x}"


def num_stored_spans(server: TlsServer, trace_id: str) -> int:
    answer = httpx.get(f"{server.url}/api/v1/traces/{trace_id}", timeout=10,
                       headers={"x-api-key": server.keys["read"]}, verify=server.trusted)
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["num_spans"]
    return count


def grpc_export(server: TlsServer, spans: list[ReadableSpan],
                credentials: grpc.ChannelCredentials, key: str | None) -> SpanExportResult:
    exporter = GrpcExporter(endpoint=server.grpc_target, credentials=credentials, timeout=10,
                            headers={"authorization": f"Bearer {key}"} if key else None)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def raw_grpc_call(target: str, credentials: grpc.ChannelCredentials | None,
                  key: str | None = None) -> grpc.StatusCode:
    """One Export with a plain stub: the status code it ends with."""
    channel = (grpc.insecure_channel(target) if credentials is None
               else grpc.secure_channel(target, credentials))
    with channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            stub.Export(encode_spans(make_spans(1)), timeout=5,
                        metadata=(("x-api-key", key),) if key else ())
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
            return code
    return grpc.StatusCode.OK


def ca_credentials(ca: Path, client: Path | None = None) -> grpc.ChannelCredentials:
    pair = {} if client is None else {"private_key": client.with_suffix(".key").read_bytes(),
                                      "certificate_chain": client.read_bytes()}
    return grpc.ssl_channel_credentials(ca.read_bytes(), **pair)


def test_otlp_http_and_rest_over_https(server: TlsServer, pki: Pki) -> None:
    spans = make_spans(3)
    exporter = HttpExporter(endpoint=f"{server.url}/v1/traces", certificate_file=str(pki.ca),
                            headers={"x-api-key": server.keys["ingest"]}, timeout=10)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert num_stored_spans(server, trace_hex(spans)) == 3
    anonymous = httpx.get(f"{server.url}/api/v1/overview", verify=server.trusted, timeout=10)
    assert anonymous.status_code == 401  # TLS does not stand in for a key


def test_otlp_grpc_over_tls_checks_the_key(server: TlsServer, pki: Pki) -> None:
    spans = make_spans(4)
    credentials = ca_credentials(pki.ca)
    assert grpc_export(server, spans, credentials, server.keys["ingest"]) \
        is SpanExportResult.SUCCESS
    assert num_stored_spans(server, trace_hex(spans)) == 4
    assert raw_grpc_call(server.grpc_target, credentials) is grpc.StatusCode.UNAUTHENTICATED
    assert raw_grpc_call(server.grpc_target, credentials, "mtl_not-a-key") \
        is grpc.StatusCode.UNAUTHENTICATED
    assert raw_grpc_call(server.grpc_target, credentials, server.keys["read"]) \
        is grpc.StatusCode.PERMISSION_DENIED
    assert raw_grpc_call(server.grpc_target, credentials, server.keys["ingest"]) \
        is grpc.StatusCode.OK


def test_plaintext_clients_are_refused(server: TlsServer) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.http_port}/readyz", timeout=5)
    assert raw_grpc_call(server.grpc_target, None, server.keys["ingest"]) \
        is grpc.StatusCode.UNAVAILABLE


def test_clients_trusting_another_ca_are_refused(server: TlsServer, pki: Pki) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{server.url}/readyz", verify=client_context(pki.other_ca), timeout=5)
    assert raw_grpc_call(server.grpc_target, ca_credentials(pki.other_ca),
                         server.keys["ingest"]) is grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_of_the_ca(mtls_server: TlsServer,
                                                            pki: Pki) -> None:
    readyz = f"{mtls_server.url}/readyz"
    for refused in (client_context(pki.ca), client_context(pki.ca, pki.other_client.cert)):
        with pytest.raises(httpx.TransportError):
            httpx.get(readyz, verify=refused, timeout=5)
    assert httpx.get(readyz, verify=mtls_server.trusted, timeout=5).status_code == 200
    target = mtls_server.grpc_target
    assert raw_grpc_call(target, ca_credentials(pki.ca)) is grpc.StatusCode.UNAVAILABLE
    assert raw_grpc_call(target, ca_credentials(pki.ca, pki.other_client.cert)) \
        is grpc.StatusCode.UNAVAILABLE
    assert raw_grpc_call(target, ca_credentials(pki.ca, pki.client.cert)) is grpc.StatusCode.OK


def test_exporters_take_the_ca_and_client_certificate_from_the_otel_variables(
        mtls_server: TlsServer, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """The standard OTEL_EXPORTER_OTLP_* variables are all an OTel client needs (docs)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(pki.ca))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", str(pki.client.cert))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", str(pki.client.key))
    for exporter in (HttpExporter(endpoint=f"{mtls_server.url}/v1/traces", timeout=10),
                     GrpcExporter(endpoint=f"https://{mtls_server.grpc_target}", timeout=10)):
        try:
            assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS, exporter
        finally:
            exporter.shutdown()


def test_sdk_sends_over_https_trusting_the_otel_certificate_variable(
        server: TlsServer, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MENTATLAB_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(pki.ca))
    mentatlab.init(endpoint=server.url, api_key=server.keys["ingest"], batch=False,
                   service_name="tls-sdk", resource_metering=False)
    try:
        with mentatlab.span("tls-run") as span:
            trace_id = f"{span.get_span_context().trace_id:032x}"
    finally:
        stats = mentatlab.shutdown(timeout_s=5)
    assert num_stored_spans(server, trace_id) == 1, stats


def test_mentatctl_reaches_an_https_server_trusting_ssl_cert_file(server: TlsServer,
                                                                   pki: Pki) -> None:
    command = [sys.executable, "-m", "mentatlab.cli.main", "cost", "report", "--range", "1h",
               "--format", "json", "--url", server.url, "--api-key", server.keys["read"]]
    trusted = subprocess.run(command, env={**os.environ, "SSL_CERT_FILE": str(pki.ca)},
                             capture_output=True, text=True, timeout=60)
    assert trusted.returncode == 0, trusted.stderr
    assert "rows" in trusted.stdout
    untrusted = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr \
        and "Traceback" not in untrusted.stderr, \
        untrusted.stderr


def _encrypted_key(pki: Pki, folder: Path) -> Path:
    key = serialization.load_pem_private_key(pki.server.key.read_bytes(), password=None)
    path = folder / "encrypted.key"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    return path


BAD_TLS = {
    # case: (setting the message must name, env beyond a valid cert and key)
    "missing cert file": ("tls_cert_file", {"tls_cert_file": "missing.pem"}),
    "cert without key": ("tls_key_file", {"tls_key_file": None}),
    "key without cert": ("tls_cert_file", {"tls_cert_file": None}),
    "key of another cert": ("tls_key_file", {"tls_key_file": "other_key"}),
    "garbage cert": ("tls_cert_file", {"tls_cert_file": "garbage.pem"}),
    "garbage key": ("tls_key_file", {"tls_key_file": "garbage.pem"}),
    "encrypted key": ("tls_key_file", {"tls_key_file": "encrypted"}),
    "garbage client CA": ("tls_client_ca_file", {"tls_client_ca_file": "garbage.pem"}),
    "client CA without TLS": ("tls_client_ca_file", {"tls_cert_file": None,
                                                     "tls_key_file": None,
                                                     "tls_client_ca_file": "ca"}),
}


def bad_tls_env(case: str, pki: Pki, folder: Path) -> dict[str, str]:
    (folder / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n"
                                        "-----END CERTIFICATE-----\n")
    files = {"missing.pem": folder / "missing.pem", "garbage.pem": folder / "garbage.pem",
             "other_key": pki.other_server.key, "encrypted": _encrypted_key(pki, folder),
             "ca": pki.ca}
    values: dict[str, Path | None] = {"tls_cert_file": pki.server.cert,
                                      "tls_key_file": pki.server.key}
    values.update({name: None if value is None else files[value]
                   for name, value in BAD_TLS[case][1].items()})
    return {f"MENTATLAB_{name.upper()}": str(path) for name, path in values.items()
            if path is not None}


@pytest.mark.parametrize("case", ["missing cert file", "key of another cert", "garbage cert",
                                  "encrypted key"])
def test_bad_tls_files_stop_serve_with_the_setting_named(case: str, pki: Pki,
                                                         tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MENTATLAB_TLS_")}
    env.update(bad_tls_env(case, pki, tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "mentatlab.cli.main", "serve", "--host", "127.0.0.1",
         "--port", str(free_port()), "--grpc-port", "0", "--data-dir", str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert BAD_TLS[case][0] in output and "Traceback" not in output, output
    assert "Uvicorn running" not in output


@pytest.mark.parametrize("case", list(BAD_TLS))
def test_load_tls_refuses_bad_files_naming_the_setting(case: str, pki: Pki, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in bad_tls_env(case, pki, tmp_path).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=BAD_TLS[case][0]):
        load_tls(load_settings())
