"""Example handler plugins shipped with kafka-task-framework."""
