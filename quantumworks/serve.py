"""Deprecated alias of `python -m servers`, kept for one release (until 2027.1).

`python -m quantumworks.serve ...` runs exactly `python -m servers ...`;
switch scripts and unit files to the new name.
"""

import sys

from servers.__main__ import main

if __name__ == "__main__":
    print("quantumworks.serve is deprecated: use `python -m servers`", file=sys.stderr, flush=True)
    main()
