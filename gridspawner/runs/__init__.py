"""Notebook runs (issue 12): a notebook executed with papermill on a backend's placement, as
a batch job (`gridspawner.backends.base.BatchJob`), queued while no GPU fits.

Pure parts: `params` (typed parameters, the notebook's parameters cell), `papermill_cmd`
(the command), `submit` (a submitted form → a run, through the spawn form's validation),
`view` (a run's JSON). I/O: `store` (the ``gridspawner_runs`` table, also the queue),
`files` (the run store directory), `executor` (queue, placement, polling, finishing).
The REST API is `gridspawner.service.runs_api`; docs/admin/notebook-runs.md tells admins.
"""
