"""Network-namespace SSH hosts for the ssh backend's tests and bench (see `lab`)."""

from .lab import Host, SSHLab, available

__all__ = ["Host", "SSHLab", "available"]
