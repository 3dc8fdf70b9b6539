"""The built-in local lab: systemd containers on the local Docker Engine that stand in for hosts."""
