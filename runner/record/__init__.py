"""The run record: what a run writes as it goes, and how runs are found again."""
