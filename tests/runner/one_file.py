"""A pipeline given as the text of one `.dockercise.yml` (shared by the loader's tests)."""

from __future__ import annotations

import pytest

from runner import pipeline
from runner.errors import PipelineInvalid
from runner.model import Pipeline

PIPE = ".dockercise.yml"


def load_one(text: str) -> Pipeline:
    loaded = pipeline.load_texts({PIPE: text})
    assert loaded is not None
    return loaded


def problems_of(text: str) -> list[str]:
    """The loader's problems with `text`, each checked to be one line (SPEC §10)."""
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load_texts({PIPE: text})
    lines = [str(p) for p in caught.value.problems]
    assert all("\n" not in line for line in lines)
    return lines
