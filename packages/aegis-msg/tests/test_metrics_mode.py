"""aegis-msg's per-message metrics: plain numbers, or prometheus_client's in multiprocess mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from aegis.core.metrics import MULTIPROCESS_DIR_VARIABLE, PlainCounter, PlainHistogram
from aegis.msg._metrics import MsgMetrics


def test_multiprocess_mode_keeps_prometheus_client_metrics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    single = MsgMetrics(CollectorRegistry())
    assert isinstance(single.consumed, PlainCounter)
    assert isinstance(single.handler_duration, PlainHistogram)
    monkeypatch.setenv(MULTIPROCESS_DIR_VARIABLE, str(tmp_path))
    metrics = MsgMetrics(CollectorRegistry())
    assert isinstance(metrics.consumed, Counter)
    assert isinstance(metrics.handler_duration, Histogram)
