"""The gridspawner service: usage pages (each user's own, and the admins'), their REST API
and CSV exports, as a JupyterHub **managed service** — the hub starts it
(``python -m gridspawner.service``), the proxy routes ``/services/gridspawner/`` to it, and
users log in to it through the hub (OAuth, `jupyterhub.services.auth.HubOAuth`), as
JupyterHub recommends for pages of one's own now that ``extra_handlers`` is deprecated.

- `settings`: ``enable_service`` (jupyterhub_config.py) and what the hub hands over;
- `app`: the tornado application and ``main``; `handlers`: pages and REST;
- `params`, `views`, `exports`, `chart`: pure parsing and formatting.
"""
