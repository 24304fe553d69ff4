"""Save a fitted estimator as JSON and load it back, without pickle.

A saved model is one JSON document::

    {"format": "skfed-model", "format_version": 1, "skfed_version": "0.1.0",
     "estimator": "VerticalLogisticRegression",
     "params": {...}, "attributes": {...}}

``params`` are the constructor's parameters (a topology is written as its
parameters; a runtime is not saved: it is this process's transport, so a
loaded model gets ``runtime=None`` and a deployment attaches its own);
``attributes`` are the fitted attributes (those ending in ``_``, but not the
transcript of the fit). Arrays keep their dtype and shape. Loading builds
the estimator from its class name, which must be one of skfed's estimators:
nothing in the file can name other code to run, unlike a pickle.

A party of a deployment saves only what it holds (a vertical feature party
its own coefficients, or its split records for vertical boosting); loaded
back with a runtime, it takes part in collaborative prediction as before.
Boosting models are saved as tree arrays; an estimator with a
``_check_loaded`` method refuses a loaded document whose parts do not fit
together (e.g. a tree whose child indices would make prediction loop), so an
edited file fails at :func:`load`, not at predict time.

Versions
--------
``format_version`` changes when the layout of the document changes; a file
with a newer format than this skfed reads is refused. ``skfed_version`` is
the version that wrote it; loading a model written by another version warns
(:class:`InconsistentVersionWarning`), as scikit-learn does for pickles,
because the estimator's internals may have changed meaning.
"""

import json
import numbers
import warnings

import numpy as np

__all__ = ["save", "load", "to_dict", "from_dict", "InconsistentVersionWarning",
           "FORMAT_VERSION"]

FORMAT = "skfed-model"
FORMAT_VERSION = 1
# Private state some estimators need to predict (vertical: each party's columns);
# an estimator class adds its own in ``_saved_state``.
_PRIVATE_STATE = ("_columns",)
# Fitted attributes that describe the fit's traffic, not the model.
_NOT_MODEL = ("transcript_",)


class InconsistentVersionWarning(UserWarning):
    """A model saved by another skfed version is being loaded."""


def _estimators():
    from .horizontal import (
        FederatedHistGradientBoostingClassifier,
        FederatedHistGradientBoostingRegressor,
        FederatedMinMaxScaler,
        FederatedSGDClassifier,
        FederatedSGDRegressor,
        FederatedStandardScaler,
    )
    from .vertical import (
        VerticalGradientBoostingClassifier,
        VerticalGradientBoostingRegressor,
        VerticalLinearRegression,
        VerticalLogisticRegression,
    )

    return {cls.__name__: cls for cls in (FederatedSGDClassifier, FederatedSGDRegressor,
                                          FederatedHistGradientBoostingClassifier,
                                          FederatedHistGradientBoostingRegressor,
                                          FederatedStandardScaler, FederatedMinMaxScaler,
                                          VerticalLinearRegression,
                                          VerticalLogisticRegression,
                                          VerticalGradientBoostingClassifier,
                                          VerticalGradientBoostingRegressor)}


def _private_state(cls):
    return _PRIVATE_STATE + tuple(getattr(cls, "_saved_state", ()))


def _topologies():
    from .topology import HorizontalTopology, VerticalTopology

    return {cls.__name__: cls for cls in (HorizontalTopology, VerticalTopology)}


def _encode(value, where):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUO":
            raise TypeError(f"{where}: cannot save an array of dtype {value.dtype}")
        if value.dtype.kind == "O":
            items = [_encode(v, where) for v in value.ravel().tolist()]
        else:
            items = value.ravel().tolist()
        return {"__ndarray__": items, "dtype": value.dtype.str if value.dtype.kind != "O"
                else "object", "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return {"__scalar__": value.item(), "dtype": value.dtype.str}
    if isinstance(value, (numbers.Integral, float)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        return {"__items__": [[_encode(k, where), _encode(v, where)]
                              for k, v in value.items()]}
    if type(value).__name__ in _topologies():
        return {"__topology__": type(value).__name__,
                "params": _encode(dict(vars(value)), where)}
    raise TypeError(f"{where}: cannot save a {type(value).__name__}")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        dtype = object if value["dtype"] == "object" else np.dtype(value["dtype"])
        items = value["__ndarray__"]
        if dtype is object:
            items = [_decode(v) for v in items]
        arr = np.empty(len(items), dtype=dtype)
        arr[:] = items
        return arr.reshape(value["shape"])
    if "__scalar__" in value:
        return np.dtype(value["dtype"]).type(value["__scalar__"])
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__items__" in value:
        return {_hashable(_decode(k)): _decode(v) for k, v in value["__items__"]}
    if "__topology__" in value:
        cls = _topologies().get(value["__topology__"])
        if cls is None:
            raise ValueError(f"unknown topology {value['__topology__']!r}")
        return cls(**_decode(value["params"]))
    raise ValueError(f"malformed saved value with keys {sorted(value)}")


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def to_dict(estimator):
    """The JSON-ready document of a fitted skfed estimator (see :func:`save`)."""
    from . import __version__

    name = type(estimator).__name__
    if _estimators().get(name) is not type(estimator):
        raise TypeError(f"{name} cannot be saved; supported: {sorted(_estimators())}")
    if not any(k.endswith("_") and not k.startswith("_") for k in vars(estimator)):
        raise ValueError(f"this {name} is not fitted: there is nothing to save")
    params = estimator.get_params(deep=False)
    params["runtime"] = None  # this process's transport, not part of the model
    if isinstance(params.get("random_state"), np.random.RandomState):
        params["random_state"] = None  # a generator's state is no model; refits differ
    private = _private_state(type(estimator))
    attributes = {k: v for k, v in vars(estimator).items()
                  if (k.endswith("_") and not k.startswith("_") and k not in _NOT_MODEL)
                  or k in private}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "skfed_version": __version__,
        "estimator": name,
        "params": {k: _encode(v, f"parameter {k!r}") for k, v in params.items()},
        "attributes": {k: _encode(v, f"attribute {k!r}") for k, v in attributes.items()},
    }


def from_dict(document, *, runtime=None):
    """The estimator a :func:`to_dict` document describes (see :func:`load`)."""
    from . import __version__

    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError("not a saved skfed model (no \"format\": \"skfed-model\")")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"malformed format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"the model was saved in format {version}, newer than this skfed "
            f"({__version__}) reads (format {FORMAT_VERSION}); upgrade skfed")
    saved_by = document.get("skfed_version")
    if saved_by != __version__:
        warnings.warn(
            f"the model was saved by skfed {saved_by}, this is skfed {__version__}: "
            "check its predictions before relying on it", InconsistentVersionWarning,
            stacklevel=3)
    name = document.get("estimator")
    cls = _estimators().get(name)
    if cls is None:
        raise ValueError(f"the model names estimator {name!r}, which is not one of skfed's "
                         f"estimators that can be loaded ({sorted(_estimators())})")
    params = {k: _decode(v) for k, v in document.get("params", {}).items()}
    unknown = set(params) - set(cls().get_params(deep=False))
    if unknown:
        raise ValueError(f"the model has parameters {sorted(unknown)} that {name} does not "
                         "take (saved by another version?)")
    params["runtime"] = runtime
    est = cls(**params)
    private = _private_state(cls)
    for k, v in document.get("attributes", {}).items():
        if not ((k.endswith("_") and not k.startswith("_")) or k in private):
            raise ValueError(f"the model has an unexpected attribute {k!r}")
        setattr(est, k, _decode(v))
    check = getattr(est, "_check_loaded", None)
    if check is not None:
        # The file may have been edited: refuse a model that would predict
        # nonsense (or never finish) rather than find out at predict time.
        check()
    from .runtime import Transcript

    # The messages since loading (collaborative prediction appends to it).
    est.transcript_ = Transcript()
    return est


def save(estimator, path, **extra):
    """Save a fitted skfed estimator as JSON (no pickle).

    Parameters
    ----------
    estimator : skfed estimator
        A fitted horizontal or vertical estimator (a deployment party's own
        part of the model too).
    path : str or path-like
        The JSON file to write.
    **extra
        More top-level entries for the document (e.g. a summary of the fit);
        :func:`load` ignores them.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import make_classification
    >>> import skfed
    >>> X, y = make_classification(n_samples=60, random_state=0)
    >>> clf = skfed.FederatedSGDClassifier(n_rounds=2, random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.json")
    >>> skfed.save(clf, path)
    >>> loaded = skfed.load(path)
    >>> bool((loaded.predict(X) == clf.predict(X)).all())
    True
    """
    document = to_dict(estimator)
    clash = set(extra) & set(document)
    if clash:
        raise ValueError(f"extra entries {sorted(clash)} would overwrite the model")
    document.update(extra)
    with open(path, "w") as f:
        json.dump(document, f, indent=1)


def load(path, *, runtime=None):
    """Load an estimator saved by :func:`save` (or ``python -m skfed party --output``).

    Parameters
    ----------
    path : str or path-like
        The JSON file.
    runtime : runtime, default=None
        Set as the estimator's ``runtime``: a deployment party passes its
        own (e.g. ``Deployment.runtime(party)``) to predict collaboratively.

    Returns
    -------
    estimator : skfed estimator
        Fitted; its predictions equal those of the estimator that was saved.

    Raises
    ------
    ValueError
        The file is not a saved skfed model, its format is newer than this
        skfed reads, or it names an estimator that is not skfed's.

    Warns
    -----
    InconsistentVersionWarning
        The file was written by another skfed version.
    """
    with open(path) as f:
        document = json.load(f)
    return from_dict(document, runtime=runtime)
