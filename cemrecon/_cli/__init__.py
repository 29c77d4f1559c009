"""Sub-commands of the ``cemrecon`` CLI, one module each (``register`` + ``run``)."""
