"""Names the hub and the usage service agree on."""

#: the JupyterHub service that serves the usage pages (`gridspawner.service`)
SERVICE_NAME = "gridspawner"
