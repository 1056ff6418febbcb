"""V and S of the unembedding W (vocab x d) without a full SVD and without a float64 copy of W.

W^T W = V S^2 V^T, so an eigendecomposition of the d x d Gram matrix gives the right singular
vectors and values. The Gram matrix is accumulated in float64 over row blocks of W, so memory stays
at one block plus d x d. U is never formed (U = W V S^-1 where it is needed, e.g. to explain).
"""

from __future__ import annotations

import torch


def gram_matrix(weight: torch.Tensor, block_rows: int = 8192) -> torch.Tensor:
    d = weight.shape[1]
    gram = torch.zeros(d, d, dtype=torch.float64, device=weight.device)
    for start in range(0, weight.shape[0], block_rows):
        block = weight[start : start + block_rows].detach().to(torch.float64)
        gram += block.T @ block
    return gram


def fix_signs(v: torch.Tensor) -> torch.Tensor:
    """A documented convention: each column's largest-magnitude entry is positive."""
    idx = v.abs().argmax(dim=0)
    signs = torch.sign(v[idx, torch.arange(v.shape[1], device=v.device)])
    signs[signs == 0] = 1
    return v * signs


def right_singular(
    weight: torch.Tensor, block_rows: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, V) in float64, singular values descending, V's columns the right singular vectors."""
    evals, evecs = torch.linalg.eigh(gram_matrix(weight, block_rows))
    order = torch.argsort(evals, descending=True)
    s = evals[order].clamp(min=0).sqrt()
    return s, fix_signs(evecs[:, order])


def right_singular_svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The full-SVD route, for checking the Gram route (slow and memory-hungry on big W)."""
    _, s, vh = torch.linalg.svd(weight.detach().to(torch.float64), full_matrices=False)
    return s, fix_signs(vh.T)


def toxic_word_basis(
    weight: torch.Tensor, toxic: torch.Tensor, ridge: float = 1e-3, block_rows: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """(gain, V) in float64: an orthonormal basis of the unembedding input ordered by how much
    more a direction moves the toxic words' logits than the vocabulary's. With the rows centred
    on the vocabulary mean (a shift of every logit changes no probability), A the toxic rows'
    second moment and B all rows', the generalized eigenvectors of A v = g B v in descending g;
    V's first k columns span the first k of them (QR in that order), each signed so that moving
    along it raises the toxic words' logits on average; `gain` holds g.

    The right singular directions of W answer "what does W use most"; on the default model the
    most toxic of them promotes 6% toxic words (docs/results.md, issue 23). These answer "what
    raises toxic words and little else", still a basis of h, so EigenShift's projection, bake
    and export apply unchanged."""
    d = weight.shape[1]
    mask = toxic.to(weight.device)
    if not bool(mask.any()):
        raise ValueError("no toxic words in the vocabulary to fit a basis to")
    total = torch.zeros(d, dtype=torch.float64, device=weight.device)
    for start in range(0, weight.shape[0], block_rows):
        total += weight[start : start + block_rows].detach().to(torch.float64).sum(0)
    mean = total / weight.shape[0]
    gram_all = gram_matrix(weight, block_rows) / weight.shape[0] - torch.outer(mean, mean)
    rows = weight[mask].detach().to(torch.float64) - mean
    gram_toxic = rows.T @ rows / len(rows)
    b = gram_all + ridge * gram_all.trace() / d * torch.eye(d, dtype=torch.float64,
                                                              device=weight.device)  # fmt: skip
    chol = torch.linalg.cholesky(b)
    c = torch.linalg.solve_triangular(chol, torch.linalg.solve_triangular(
        chol, gram_toxic, upper=False).T, upper=False)  # L^-1 A L^-T (symmetric)  # fmt: skip
    gains, y = torch.linalg.eigh((c + c.T) / 2)
    order = torch.argsort(gains, descending=True)
    v = torch.linalg.solve_triangular(chol.T, y[:, order], upper=True)  # B-orthogonal
    q, _ = torch.linalg.qr(v)  # column j spans what the first j+1 of v span
    # each direction points the way that raises the toxic words' logits on average
    signs = torch.sign(rows.mean(0) @ q)
    return gains[order].clamp(min=0), q * torch.where(signs == 0, 1.0, signs)
