"""The LLM's fusion weight, fitted on validation users by maximum likelihood.

Which candidate comes next is modelled as a softmax over the candidates of `a * lrurec + b * llm` (each stage's
log-probability over the candidates, `fusion.log_softmax`): a conditional logit with two features, whose
log-likelihood is concave, so Newton's method finds its maximum. The served order depends on `b / a` only, and that
ratio is the weight. Likelihood rather than NDCG@10 because it uses every validation user whose next item is among
the candidates, at whatever rank, where NDCG@10 on a few hundred users moves by a whole hit at a time.

The LLM earns its weight: the fit with it must beat LRURec alone (`b = 0`) by a likelihood-ratio test at
`SIGNIFICANCE`, otherwise the weight is 0, LRURec's order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from models.verbalizer.fusion import log_softmax

# The 5% point of the chi-squared distribution with one degree of freedom: the LLM's one extra parameter.
SIGNIFICANCE = 3.841
# Past this the fused order is the LLM's, LRURec only breaking its ties.
MAX_WEIGHT = 100.0


class FusionFit(BaseModel):
    weight: float  # the LLM's weight in `fusion.fused_scores`; 0 is LRURec's order
    users: int  # validation users whose next item is among the candidates: the ones the fit learns from
    lrurec_scale: float  # a, fitted with the LLM
    llm_scale: float  # b
    log_likelihood: dict[str, float]  # per user: "lrurec" (b = 0, a fitted) and "fused"
    lr_statistic: float  # 2 * users * (fused - lrurec), against SIGNIFICANCE


def _newton(features: np.ndarray, mask: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """The maximum-likelihood coefficients of a conditional logit (features: users × candidates × k, mask marks
    real candidates, target: each user's true candidate) and the mean log-likelihood there."""
    rows = np.arange(len(target))

    def loglik(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.where(mask, features @ theta, -np.inf)
        top = z.max(axis=1, keepdims=True)
        log_p = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
        return float(log_p[rows, target].mean()), np.exp(log_p)

    theta = np.zeros(features.shape[2])
    theta[0] = 1.0  # LRURec's own scale, the LLM left out
    current, p = loglik(theta)
    for _ in range(100):
        mean = np.einsum("nm,nmk->nk", p, features)
        grad = (features[rows, target] - mean).mean(axis=0)
        centred = features - mean[:, None, :]
        hessian = np.einsum("nm,nmk,nml->kl", p, centred, centred) / len(target)
        step = np.linalg.lstsq(hessian + 1e-9 * np.eye(len(theta)), grad, rcond=None)[0]
        # Halve the step until the likelihood rises: Newton's full step can overshoot far from the maximum.
        for _ in range(30):
            candidate, (value, q) = theta + step, loglik(theta + step)
            if value >= current:
                break
            step /= 2
        else:
            break
        gain, theta, current, p = value - current, candidate, value, q
        if gain < 1e-12:
            break
    return theta, current


def fit_weight(lrurec: Sequence[Sequence[float]], llm: Sequence[Sequence[float]],
               targets: Sequence[int | None]) -> FusionFit:
    """The LLM's weight from validation users: each user's LRURec and LLM scores of its candidates and the position
    of its next item among them (None when it is not a candidate; such users say nothing about the order)."""
    kept = [(a, b, t) for a, b, t in zip(lrurec, llm, targets, strict=True) if t is not None and a and b]
    if not kept:
        return FusionFit(weight=0.0, users=0, lrurec_scale=1.0, llm_scale=0.0,
                         log_likelihood={"lrurec": 0.0, "fused": 0.0}, lr_statistic=0.0)
    width = max(len(a) for a, _, _ in kept)
    features, mask = np.zeros((len(kept), width, 2)), np.zeros((len(kept), width), dtype=bool)
    for i, (a, b, _) in enumerate(kept):
        features[i, : len(a), 0], features[i, : len(b), 1], mask[i, : len(a)] = log_softmax(a), log_softmax(b), True
    target = np.array([t for _, _, t in kept])
    _, alone = _newton(features[:, :, :1], mask, target)
    (a, b), fused = _newton(features, mask, target)
    statistic = 2 * len(kept) * (fused - alone)
    if b <= 0 or statistic < SIGNIFICANCE:
        weight = 0.0
    else:
        weight = MAX_WEIGHT if a <= b / MAX_WEIGHT else float(b / a)
    return FusionFit(weight=round(weight, 4), users=len(kept), lrurec_scale=round(float(a), 4),
                     llm_scale=round(float(b), 4),
                     log_likelihood={"lrurec": round(alone, 5), "fused": round(fused, 5)},
                     lr_statistic=round(statistic, 3))
