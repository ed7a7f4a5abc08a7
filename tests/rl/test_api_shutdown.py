"""Ctrl-C pressed again while a run's actors stop (rl.api.run_to_end): no traceback, the resume message kept."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A trainer whose fit is interrupted as by Ctrl-C, and whose shutdown is pressed `presses` times more; the driver is
# `reasonrl`'s own main, so what reaches the terminal is what a user sees.
SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even under a background shell
    from rl import api
    from rl.trainer import RunInterrupted

    class Trainer:
        def fit(self):
            raise RunInterrupted("run stopped after step 3 of 12; resume with: reasonrl train x --resume")

        def shutdown(self):
            for _ in range(int(sys.argv[1])):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
            print("actors stopped", file=sys.stderr, flush=True)

    try:
        api.run_to_end(Trainer())
    except KeyboardInterrupt as interrupt:
        print(interrupt, file=sys.stderr)
        sys.exit(130)
""")


@pytest.mark.parametrize("presses", [0, 1, 2])
def test_ctrl_c_again_during_shutdown_never_ends_in_a_traceback(presses):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(presses)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    said = done.stderr.splitlines()
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    resume = "run stopped after step 3 of 12; resume with: reasonrl train x --resume"
    if presses == 0:
        assert said == ["actors stopped", resume]
    elif presses == 1:  # the shutdown goes on to its end, and says why the key did nothing
        assert said == ["still stopping the run's actors; Ctrl-C again quits without waiting", "actors stopped",
                        resume]
    else:  # the second press quits at once, with the message the user needs
        assert said == ["still stopping the run's actors; Ctrl-C again quits without waiting", resume]


def test_a_finished_run_shuts_down_with_ctrl_c_deferred_and_restores_the_handler():
    from rl.api import run_to_end

    class Trainer:
        stopped = False

        def fit(self):
            return {"steps": 3}

        def shutdown(self):
            Trainer.stopped = signal.getsignal(signal.SIGINT) is not signal.default_int_handler

    before = signal.getsignal(signal.SIGINT)
    assert run_to_end(Trainer()) == {"steps": 3}
    assert Trainer.stopped  # our handler held Ctrl-C during the shutdown
    assert signal.getsignal(signal.SIGINT) is before
