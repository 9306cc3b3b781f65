"""``greenmeter run -- CMD``: measure a command from the outside and write one report.

* :mod:`~greenmeter.cli.run.runner`: the one flow from options to exit code (the meter,
  the command, the final report and the closing line);
* :mod:`~greenmeter.cli.run.receiver`: the parent's end of the phase channel, which
  turns the phases of a command that uses greenmeter itself into phases of this report
  (the wire format and the child's end are :mod:`greenmeter.channel`, which a measured
  child imports without the command line);
* :mod:`~greenmeter.cli.run.live`: the live display (power, energy, CO2e, epoch
  projections);
* :mod:`~greenmeter.cli.run.child_signals`: the signals passed on to the command, and
  how its end reads as an exit code;
* :mod:`~greenmeter.cli.run.survivors`: processes the command leaves running.

Importing this package imports none of them: ``greenmeter run`` imports the runner when
it runs.
"""
