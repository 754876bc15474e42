"""The session's state machine: the moves allowed, and that end reasons are the metric labels."""

from __future__ import annotations

from streams.live.lifecycle import ALLOWED, SERVING, EndReason, SessionState


def test_every_state_has_its_moves_and_ended_is_final() -> None:
    assert set(ALLOWED) == set(SessionState)
    assert ALLOWED[SessionState.ENDED] == frozenset()
    # A session is only ever released once: nothing leads back out of ending.
    assert ALLOWED[SessionState.ENDING] == {SessionState.ENDED}
    # Resume: live and reconnecting alternate, and either may end.
    assert SessionState.RECONNECTING in ALLOWED[SessionState.LIVE]
    assert SessionState.LIVE in ALLOWED[SessionState.RECONNECTING]
    assert all(SessionState.ENDING in ALLOWED[state] for state in SERVING)
    assert SessionState.STARTING not in {to for moves in ALLOWED.values() for to in moves}


def test_end_reasons_are_their_metric_labels() -> None:
    assert EndReason.NO_MEDIA == "no_media"
    assert f"{EndReason.BROADCASTER_CLOSED}" == "broadcaster_closed"
    assert len({reason.value for reason in EndReason}) == len(EndReason) == 11
