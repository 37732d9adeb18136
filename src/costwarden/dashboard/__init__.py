"""The web dashboard served by the gateway at ``/dashboard`` (admin login).

Kept empty of imports on purpose: ``costwarden.config`` imports ``dashboard.config``, and the
pages import the config, so pulling the handler in here would make an import cycle.
"""
