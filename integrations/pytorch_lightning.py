"""Lightning callback (``pytorch_lightning``): energy per fit, epoch, validation, test, predict.

Example::

    import pytorch_lightning as pl
    from greenmeter.integrations.pytorch_lightning import GreenMeterCallback

    trainer = pl.Trainer(callbacks=[GreenMeterCallback(report_path="energy.json")])
    trainer.fit(model, datamodule=dm)

The callback measures with one :class:`greenmeter.EnergyMeter` across every ``fit``,
``validate``, ``test`` and ``predict`` call of the trainers it is given, and rewrites
one report after each. See :class:`GreenMeterCallback` for the phases and options; the
same callback for the unified ``lightning`` package is
:mod:`greenmeter.integrations.lightning`; both share one implementation.
"""

from __future__ import annotations

try:
    from pytorch_lightning.callbacks import Callback
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "greenmeter.integrations.pytorch_lightning needs the pytorch_lightning package, "
        f"which could not be imported ({exc}). Install it with: "
        'pip install "greenmeter[pytorch-lightning]"'
    ) from exc

from greenmeter.integrations._lightning_common import GreenMeterCallbackCore, GreenMeterWarning

__all__ = ["GreenMeterCallback", "GreenMeterWarning"]


class GreenMeterCallback(GreenMeterCallbackCore, Callback):
    __doc__ = GreenMeterCallbackCore.__doc__
