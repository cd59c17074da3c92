"""Shared test helpers: reference implementations, fabricated weights, servers, the fork server and the manifests.

``REPO`` is the repository root, for every test wherever its file sits in ``tests/``.
"""

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
