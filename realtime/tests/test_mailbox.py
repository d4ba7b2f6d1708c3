"""A socket's one inbox (realtime.mailbox): order, one reader, nothing held while idle."""

import asyncio

import pytest

from realtime.mailbox import Mailbox


async def test_items_come_out_in_the_order_they_were_put_whoever_put_them():
    mailbox = Mailbox()
    mailbox.put_nowait({"type": "websocket.connect"})
    mailbox.put_nowait({"type": "inbox.events", "n": 1})
    assert await mailbox.get() == {"type": "websocket.connect"}
    assert mailbox.qsize() == 1
    assert await mailbox.get() == {"type": "inbox.events", "n": 1}
    waiting = asyncio.ensure_future(mailbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    mailbox.put_nowait({"type": "websocket.receive", "text": "{}"})
    mailbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert await waiting == {"type": "websocket.receive", "text": "{}"}
    assert await mailbox.get() == {"type": "websocket.disconnect", "code": 1000}
    assert mailbox.empty()


async def test_an_idle_mailbox_holds_no_deque():
    # An asyncio.Queue holds four deques for its whole life (≈ 3 KiB per socket).
    mailbox = Mailbox()
    assert mailbox._items is None
    mailbox.put_nowait("a")
    assert await mailbox.get() == "a"
    assert mailbox._items is None
    assert not hasattr(mailbox, "__dict__")


async def test_a_second_reader_is_refused_and_a_cancelled_read_leaves_it_usable():
    mailbox = Mailbox()
    first = asyncio.ensure_future(mailbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await mailbox.get()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    mailbox.put_nowait("b")
    assert await mailbox.get() == "b"
