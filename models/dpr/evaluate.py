"""Retrieval accuracy as KorDPR measures it: a question is answered at k when the answer text appears in one
of the top k retrieved full passages. Also MRR@10 over the first such passage."""

from __future__ import annotations

KS = (1, 5, 10, 20)


def retrieval_metrics(retrieved: list[list[str]], answers: list[str], ks: tuple[int, ...] = KS) -> dict[str, float]:
    if len(retrieved) != len(answers):
        raise ValueError("one retrieved list per answer")
    if not answers:
        raise ValueError("no questions to evaluate")
    first_hit = [next((rank for rank, text in enumerate(texts, 1) if answer in text), None)
                 for texts, answer in zip(retrieved, answers, strict=True)]
    metrics = {f"top{k}": sum(1 for r in first_hit if r is not None and r <= k) / len(answers) for k in ks}
    metrics["mrr@10"] = sum(1 / r for r in first_hit if r is not None and r <= 10) / len(answers)
    metrics["questions"] = len(answers)
    return metrics
