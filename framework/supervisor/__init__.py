"""Several worker processes in one pod, supervised: ``ktf worker --processes N|auto``."""

from framework.supervisor.cores import process_count, usable_cores
from framework.supervisor.supervisor import Supervisor

__all__ = ["Supervisor", "process_count", "usable_cores"]
