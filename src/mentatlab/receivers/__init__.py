"""Receivers: bytes in (OTLP/HTTP, OTLP/gRPC, native events), ``RawSpan`` batches out.

Import the submodules directly; this package only names them:

* :mod:`mentatlab.receivers.base`: ``DecodedBatch``, ``IngestOutcome``, ``Ingest``;
* :mod:`mentatlab.receivers.decode`: OTLP protobuf/JSON decoding;
* :mod:`mentatlab.receivers.otlp_http`: OTLP/HTTP bodies and answers;
* :mod:`mentatlab.receivers.otlp_grpc`: the OTLP/gRPC servicer and server;
* :mod:`mentatlab.receivers.events`: the native event API and ``EventPairer``.
"""
