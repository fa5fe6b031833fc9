"""A handler module whose import kills the process (exit code 3): a child that always crashes."""

import os

os._exit(3)
