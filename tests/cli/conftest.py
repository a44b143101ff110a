"""Fixtures of the command-line tests."""

from __future__ import annotations

import pytest

import avrobust.demo.training
import avrobust.demo.work
import avrobust.evaluation


@pytest.fixture
def no_work(monkeypatch):
    """Make any training or attack fail the test: the checks must come before any work."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work started although the run should have been refused")

    monkeypatch.setattr(avrobust.demo.training, "train_model", forbidden)
    monkeypatch.setattr(avrobust.demo.work, "SyntheticActiveSpeaker", forbidden)
    monkeypatch.setattr(avrobust.demo.work, "evaluate", forbidden)
    monkeypatch.setattr(avrobust.evaluation, "evaluate", forbidden)  # avrobust evaluate's
