"""The ``isoswitch`` command: the one package that composes the core (``switch``), the REST
front (``http_front``), the simulated issuer host (``acquirer_sim``) and the bench (``bench``).

``cli`` builds the command tree; ``serve`` runs the system (``up``, ``serve``, ``switch``);
``admin`` reads and changes its books (``project``, ``saf``, ``audit``, ``reconcile``,
``config show``); ``config`` registers the sections of the TOML file that are not the core's;
``supervisor`` keeps the worker processes of ``up --workers N`` running; ``failures`` turns
what stops a command into one line and an exit status. Nothing is imported here, so that
``isoswitch --help`` stays quick.
"""

__all__: list[str] = []
