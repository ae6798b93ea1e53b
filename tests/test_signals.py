"""``deferred_interrupt``: a Ctrl-C inside the block is raised after it, whatever the block does."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from finetune_advisor._signals import deferred_interrupt

posix_only = pytest.mark.skipif(os.name != "posix", reason="sends itself SIGINT")


def ctrl_c_to_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)        # the handler runs at the next bytecode boundary


@posix_only
def test_interrupt_in_the_block_is_raised_after_it_even_if_the_block_swallows_everything():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            try:
                ctrl_c_to_self()
            except BaseException:   # what a library's import may do
                pytest.fail("the interrupt was raised inside the block")
            finished.append(True)
    assert finished == [True]       # the block ran to its end first


@posix_only
def test_previous_handler_is_back_after_the_block():
    before = signal.getsignal(signal.SIGINT)
    with deferred_interrupt():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(KeyboardInterrupt):   # and a Ctrl-C after it is an ordinary one again
        ctrl_c_to_self()


def test_no_interrupt_no_exception_and_other_threads_are_left_alone():
    with deferred_interrupt():
        value = 1
    assert value == 1
    seen = []
    worker = threading.Thread(target=lambda: seen.append(_handler_inside_block()))
    worker.start()
    worker.join()
    assert seen == [signal.getsignal(signal.SIGINT)]   # signal.signal is main-thread only: not touched


def _handler_inside_block():
    with deferred_interrupt():
        return signal.getsignal(signal.SIGINT)


def test_an_inherited_ignored_sigint_stays_ignored():
    """nohup and `cmd &` start a program with Ctrl-C ignored; a deferral must not turn it back on."""
    import os
    import signal

    from finetune_advisor._signals import deferred_interrupt
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupt():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)          # ignored: nothing is raised after the block
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
