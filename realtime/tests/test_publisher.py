"""realtime.publisher.Publisher.collecting: a DB thread's publishes handed back to the caller."""

import pytest

from realtime.publisher import Publisher


def recording(publisher: Publisher) -> list:
    seen: list = []
    publisher.listeners.append(seen.extend)
    return seen


def test_collected_messages_come_back_with_the_result_and_are_not_sent():
    publisher = Publisher()
    seen = recording(publisher)

    def work(n: int) -> int:
        publisher.publish([("user.1", {"type": "inbox.events", "n": n})])
        publisher.publish([("user.2", {"type": "inbox.events", "n": n})])
        return n * 2

    result, messages = publisher.collecting(work)(21)
    assert result == 42
    assert [group for group, _ in messages] == ["user.1", "user.2"]
    assert seen == []


def test_what_was_published_before_a_failure_is_still_published(monkeypatch):
    publisher = Publisher()
    seen = recording(publisher)
    sent: list = []

    async def send(messages) -> None:  # no event loop here: Publisher sends synchronously
        sent.append(messages)

    monkeypatch.setattr(publisher, "_send", send)

    def work() -> None:
        publisher.publish([("user.1", {"type": "inbox.events"})])  # committed
        raise RuntimeError("after the commit")

    with pytest.raises(RuntimeError):
        publisher.collecting(work)()
    assert [group for group, _ in seen] == ["user.1"]
    assert [[group for group, _ in messages] for messages in sent] == [["user.1"]]
