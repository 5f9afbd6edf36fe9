"""Session set-up shared by every test module.

ArviZ 0.23 writes a once-a-day stamp file on import (``~/.cache/arviz/daily_warning``) through a
fixed temporary name, so two pytest-xdist workers importing it at the same moment on a fresh
machine race and one fails with ``FileNotFoundError`` at collection.  Importing it here, in
the controlling process before the workers start, writes the stamp once; the workers then only
read it.
"""

import arviz  # noqa: F401
