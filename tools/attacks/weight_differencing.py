"""An honest server learns a dropped client's sample count n_k.

Every upload carries n_k / N; the server decodes the survivors' weight sum
each round. When client2 drops, two consecutive sums differ by exactly its
weight, and N is public to the server: n_2 = N * (W_before - W_after).
"""
import numpy as np
from sklearn.datasets import make_regression

from skfed import HorizontalTopology
from skfed.horizontal import FederatedSGDRegressor, dropout
from skfed.runtime import LocalRuntime

seen = []  # what the server's own code decodes: ring sums before dividing

decode = dropout.FixedPointRing.decode


def spy_decode(self, encoded):
    v = decode(self, encoded)
    seen.append(np.asarray(v).ravel().copy())
    return v


dropout.FixedPointRing.decode = spy_decode
counts = {}
up = dropout.TolerantClientAggregation.upload


def spy_upload(self, values, tag, weight=None):
    if tag == "counts":
        counts[self.ctx.party] = int(np.asarray(values)[0])  # the client's own n_k
    return up(self, values, tag, weight)


dropout.TolerantClientAggregation.upload = spy_upload
X, y = make_regression(n_samples=250, n_features=4, random_state=0)
owner = np.random.default_rng(0).integers(0, 5, size=len(y)).astype(float)
Xc = np.column_stack([owner, X])
topo = HorizontalTopology(partition=0)
victim = topo.split(X, y, party_column=owner)[2][0]
est = FederatedSGDRegressor(topology=topo, n_rounds=4, random_state=0, min_clients=3,
                            runtime=LocalRuntime(drops={victim: ("before_upload", 3)}))
est.fit(Xc, y)
n_total = seen[0][0]
weights = [s[-1] for s in seen[1:]]
print("N =", n_total, "weight sums per round:", np.round(weights, 6))
leak = n_total * (weights[0] - weights[1])
print("server's estimate of the dropped client's n_k:", round(leak, 3), "true:", counts[victim],
      "all:", counts)
