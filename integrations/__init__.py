"""Framework adapters, installed as ``greenmeter.integrations``.

Each adapter lives in its own module and imports its framework only when that module is
imported: ``greenmeter.integrations.lightning``, ``greenmeter.integrations.torch``,
``greenmeter.integrations.transformers``. The core package never imports them.
"""
