"""Keeps the contextkit repository's own test run out of this scaffold. Delete this file in your copy.

The scaffold's package is not installed in the contextkit repository, so its tests could not import it there;
in a copy (any directory not named ``_template``) this file does nothing.
"""

from pathlib import Path

collect_ignore_glob = ["*"] if Path(__file__).parent.name == "_template" else []
