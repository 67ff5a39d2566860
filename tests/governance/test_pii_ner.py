"""The optional NER model: a real spaCy pipeline built here (blank English + an entity ruler,
saved to a folder: nothing downloaded) adds PERSON and LOCATION findings; a model that is not
installed stops the start with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from pii_modes_helpers import make_span

from mentatlab.errors import ConfigError
from mentatlab.governance.pii_config import PiiConfig, PiiMode
from mentatlab.pipeline.redact import Redact
from mentatlab.settings import load_settings


@pytest.fixture(scope="module")
def ner_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([  # type: ignore[attr-defined]
        {"label": "PERSON", "pattern": [{"LOWER": "fox"}, {"LOWER": "mulder"}]},
        {"label": "GPE", "pattern": "Springfield"},
        {"label": "ORG", "pattern": "Acme"}])
    folder = tmp_path_factory.mktemp("ner") / "tiny_ner"
    nlp.to_disk(folder)
    return folder


def test_named_entities_are_redacted_with_the_pattern_findings(ner_folder: Path) -> None:
    span = make_span(note="Agent Fox Mulder of Acme moved to Springfield, mail fm@fbi.example.com")
    Redact(PiiConfig(PiiMode.REDACT, ner_model=str(ner_folder)))([span])
    assert json.loads(span.attributes)["note"] == \
        "Agent <PERSON> of Acme moved to <LOCATION>, mail <EMAIL_ADDRESS>"  # ORG not reported
    categories = {f["category"] for f in json.loads(span.pii_findings) if f["key"] == "note"}
    assert categories == {"PERSON", "LOCATION", "EMAIL_ADDRESS"}


def test_without_a_model_names_are_not_findings(ner_folder: Path) -> None:
    span = make_span(note="Agent Fox Mulder moved to Springfield")
    Redact(PiiConfig(PiiMode.REDACT))([span])
    assert json.loads(span.attributes)["note"] == "Agent Fox Mulder moved to Springfield"


def test_a_model_that_is_not_installed_stops_the_start(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, pii_ner_model="xx_not_installed_model")
    with pytest.raises(ConfigError, match="pii_ner_model.*never downloads"):
        Redact.from_settings(settings)
