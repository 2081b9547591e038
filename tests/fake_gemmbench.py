"""gemmbench's command line on the made-up device, for tests that run it in a process of its own (under
torchrun), where no fixture reaches: `python tests/fake_gemmbench.py sweep ...` runs as `gemmbench sweep ...`
does, with the `fake` backend loaded and every session on fakes.FakeBench (the `fake_device` fixture's
setup, in conftest.py)."""

import fakes

from gemmbench.backends.plugins import load_plugins
from gemmbench.cli import main
from gemmbench.measure import session

if __name__ == "__main__":
    load_plugins([fakes.__file__], entry_points=False)
    session.SESSION_BENCH = fakes.FakeBench
    main()
