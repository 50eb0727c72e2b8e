"""The soak of issue 16 item 7 (``make soak``, not part of ``make test``): many clients
through a real aigw for a minute; no failed request, no growth, no leaked descriptor.
See ``__main__`` for what runs and ``measure`` for the criteria."""
