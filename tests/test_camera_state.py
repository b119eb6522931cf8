"""The state and the wait an error gives a camera, both decided by the error's class."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from mjpeg_proxy.camera import errors
from mjpeg_proxy.camera.state import ERROR_RULES, CameraState, StateTracker
from mjpeg_proxy.camera.timing import AUTH_BACKOFF_S, BACKOFF_S, CameraTiming


@pytest.fixture
def tracker(caplog) -> Iterator[StateTracker]:
    """A camera's tracker, whose errors no log record keeps: the error classes a test
    defines are gone after it (no stray kind in later tests' metrics, ``error_kinds``)."""
    caplog.set_level(logging.CRITICAL + 1, logger="mjpeg_proxy.camera.state")
    yield StateTracker("cam", CameraTiming())
    gc.collect()


def test_an_error_subclass_with_its_own_kind_gets_its_base_class_state_and_backoff(tracker):
    class SessionExpired(errors.AuthError):
        kind = "session_expired"

    delay = tracker.failed(SessionExpired("HTTP 401"))

    assert tracker.state is CameraState.AUTH_FAILED
    first_step = AUTH_BACKOFF_S[0]
    assert first_step / 2 <= delay <= first_step  # the login backoff, not the ordinary one


def test_a_subclass_of_stalled_reconnects_at_once_and_an_unlisted_error_is_offline(tracker):
    class NoKeyframe(errors.Stalled):
        kind = "no_keyframe"

    assert tracker.failed(NoKeyframe("no keyframe")) == 0.0
    assert tracker.state is CameraState.STALLED

    delay = tracker.failed(errors.BadFrame("not a JPEG"))  # no row of its own: SourceError's

    assert tracker.state is CameraState.OFFLINE
    assert BACKOFF_S[0] / 2 <= delay <= BACKOFF_S[0]


def test_every_rule_puts_the_camera_in_an_error_state():
    assert all(rule.state.is_error for rule in ERROR_RULES.values())
