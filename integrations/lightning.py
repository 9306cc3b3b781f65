"""Lightning callback (``lightning.pytorch``): energy per fit, epoch, validation, test, predict.

Example::

    import lightning.pytorch as pl
    from greenmeter.integrations.lightning import GreenMeterCallback

    trainer = pl.Trainer(callbacks=[GreenMeterCallback(report_path="energy.json")])
    trainer.fit(model, datamodule=dm)

The callback measures with one :class:`greenmeter.EnergyMeter` across every ``fit``,
``validate``, ``test`` and ``predict`` call of the trainers it is given, and rewrites
one report after each. See :class:`GreenMeterCallback` for the phases and options; the
same callback for the older ``pytorch_lightning`` namespace is
:mod:`greenmeter.integrations.pytorch_lightning`.
"""

from __future__ import annotations

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "greenmeter.integrations.lightning needs the Lightning package (lightning.pytorch), "
        f"which could not be imported ({exc}). Install it with: "
        'pip install "greenmeter[lightning]"'
    ) from exc

from greenmeter.integrations._lightning_common import GreenMeterCallbackCore, GreenMeterWarning

__all__ = ["GreenMeterCallback", "GreenMeterWarning"]


class GreenMeterCallback(GreenMeterCallbackCore, Callback):
    __doc__ = GreenMeterCallbackCore.__doc__
