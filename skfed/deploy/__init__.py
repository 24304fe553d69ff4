"""The deployment face: one party per process, built from a deployment file.

:class:`Deployment` reads a deployment file (who the parties are, where they
listen, which estimator with which agreed parameters) and builds one party's
runtime, topology and estimator; :mod:`skfed.deploy.cli` is
``python -m skfed party``. It sits above the families (it imports their
estimators), so the transport beneath them (:mod:`skfed.runtime`) imports
no family.
"""

from .config import Deployment

__all__ = ["Deployment"]
