"""Demo cases for ``python -m skfed demo``: horizontal federated SGD and boosting."""

from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..topology import HorizontalTopology
from .boosting import (
    FederatedHistGradientBoostingClassifier,
    FederatedHistGradientBoostingRegressor,
)
from .scaling import FederatedStandardScaler
from .sgd import FederatedSGDClassifier, FederatedSGDRegressor


def demo_cases(quick=False):
    X_dig, y_dig = load_digits(return_X_y=True)
    X_bc, y_bc = load_breast_cancer(return_X_y=True)
    X_db, y_db = load_diabetes(return_X_y=True)
    five = HorizontalTopology(n_parties=5, random_state=0)
    skewed = HorizontalTopology(n_parties=5, partition="dirichlet", alpha=0.5, random_state=0)
    rounds = 5 if quick else 10
    iterations = 10 if quick else 50
    clf = dict(loss="log_loss", alpha=1e-3, n_rounds=rounds, random_state=0)
    return [
        {"name": "digits: SGD, 5 clients IID, masking",
         "estimator": make_pipeline(StandardScaler(),
                                    FederatedSGDClassifier(topology=five, **clf)),
         "X": X_dig, "y": y_dig},
        # the scaling statistics, too, come from secure sums (exactly the pooled ones)
        {"name": "digits: fed. scaler + SGD, 5 clients IID",
         "estimator": make_pipeline(FederatedStandardScaler(five),
                                    FederatedSGDClassifier(topology=five, **clf)),
         "X": X_dig, "y": y_dig},
        {"name": "digits: SGD, 5 clients Dirichlet(0.5), masking",
         "estimator": make_pipeline(StandardScaler(),
                                    FederatedSGDClassifier(topology=skewed, **clf)),
         "X": X_dig, "y": y_dig},
        {"name": "breast cancer: SGD, 3 clients, Paillier-2048",
         "estimator": make_pipeline(StandardScaler(), FederatedSGDClassifier(
             topology=HorizontalTopology(n_parties=3, random_state=0),
             secure_aggregation="paillier", **clf)),
         "X": X_bc, "y": y_bc},
        {"name": "diabetes: SGD regressor, 4 clients, masking",
         "estimator": make_pipeline(StandardScaler(), FederatedSGDRegressor(
             topology=HorizontalTopology(n_parties=4, random_state=0), n_rounds=20,
             random_state=0)),
         "X": X_db, "y": y_db},
        {"name": "breast cancer: hist boosting, 5 clients, masking",
         "estimator": FederatedHistGradientBoostingClassifier(
             five, max_iter=iterations, random_state=0),
         "X": X_bc, "y": y_bc},
        {"name": "diabetes: hist boosting regressor, 4 clients",
         "estimator": FederatedHistGradientBoostingRegressor(
             HorizontalTopology(n_parties=4, random_state=0), max_iter=iterations,
             random_state=0),
         "X": X_db, "y": y_db},
    ]
