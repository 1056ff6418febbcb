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
