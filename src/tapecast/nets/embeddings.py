"""Embeddings of the CSDI denoiser: diffusion time and side information.

CSDI (Tashiro et al. 2021, arXiv 2107.03502, Sec. 4 and App. E) conditions its residual blocks on

* the diffusion time ``t``: a sinusoidal embedding passed through two fully connected layers with
  SiLU activations (the DiffWave recipe, Kong et al. 2021, arXiv 2009.09761), projected per block;
* side information per grid cell (k, l): a sinusoidal embedding of the time point s_l (128 dims),
  a learned embedding of the feature id k (16 dims) and the conditional mask m_{k,l} (1 dim).

Every tensor here is channels-last: a grid cell's vector is the last axis.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def sinusoidal_embedding(positions: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sine/cosine embedding of real positions (Vaswani et al. 2017, Sec. 3.5).

    Component i of each half uses the angular frequency ``max_period ** (-i / (dim / 2))``, so the
    periods run geometrically from 2π to about 2π · max_period.

    Parameters
    ----------
    positions : Tensor, float (...)
        Positions; any shape.
    dim : int
        Even embedding width.
    max_period : float
        Longest period, in units of ``positions``, divided by 2π.

    Returns
    -------
    Tensor, float32 (..., dim)
        ``[sin(p ω_0), ..., sin(p ω_{d/2-1}), cos(p ω_0), ..., cos(p ω_{d/2-1})]``.
    """
    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float32, device=positions.device) / half
    frequencies = torch.exp(-math.log(max_period) * exponents)  # (d/2,) ω_i
    angles = positions.to(torch.float32).unsqueeze(-1) * frequencies  # (..., d/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (..., d)


class DiffusionTimeEmbedding(nn.Module):
    """Diffusion time ``t`` (B,) -> (B, dim): sinusoid, then two FC layers with SiLU.

    Parameters
    ----------
    dim : int
        Width of the sinusoid and of both FC layers (CSDI: 128).
    time_scale : float
        ``t`` is multiplied by this before the sinusoid, so a continuous time in [0, T_max] can
        be spread over the same frequency range as integer step indices.
    """

    def __init__(self, dim: int, time_scale: float = 1.0) -> None:
        super().__init__()
        self.dim = dim
        self.time_scale = float(time_scale)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, t: Tensor) -> Tensor:
        """Embed ``t``.

        Parameters
        ----------
        t : Tensor, float (B,)
            Diffusion time of each batch row, as the sampler hands it to the model.

        Returns
        -------
        Tensor, float32 (B, dim)
        """
        h = sinusoidal_embedding(t * self.time_scale, self.dim)  # (B, dim)
        h = F.silu(self.fc1(h))
        return F.silu(self.fc2(h))


class SideInfo(nn.Module):
    """Side information of CSDI: time embedding ⊕ feature embedding ⊕ conditional mask.

    Parameters
    ----------
    time_emb_dim : int
        Width of the sinusoidal embedding of the time points.
    feature_emb_dim : int
        Width of the learned embedding of the feature ids.
    n_features : int
        K, the number of feature ids.
    """

    def __init__(self, time_emb_dim: int, feature_emb_dim: int, n_features: int) -> None:
        super().__init__()
        self.time_emb_dim = time_emb_dim
        self.n_features = n_features
        self.feature_embedding = nn.Embedding(n_features, feature_emb_dim)

    @property
    def dim(self) -> int:
        """Channels of the side information."""
        return self.time_emb_dim + self.feature_embedding.embedding_dim + 1

    def forward(self, timepoints: Tensor, cond_mask: Tensor,
                feature_ids: Tensor | None = None) -> Tensor:
        """Side information of every grid cell.

        Parameters
        ----------
        timepoints : Tensor, float (B, L)
            Time point of each column (trade-time window index by default).
        cond_mask : Tensor, float or bool (B, K, L)
            1 where the cell is a conditioning observation, 0 where it is a target or missing.
        feature_ids : Tensor, int64 (B, K) or (K,), optional
            Feature id of each row; ``arange(K)`` by default.

        Returns
        -------
        Tensor, float32 (B, K, L, time_emb_dim + feature_emb_dim + 1)
        """
        batch, n_rows, length = cond_mask.shape
        if feature_ids is None:
            feature_ids = torch.arange(n_rows, device=cond_mask.device)
        time_emb = sinusoidal_embedding(timepoints, self.time_emb_dim)  # (B, L, Dt)
        time_emb = time_emb.unsqueeze(1).expand(batch, n_rows, length, -1)  # (B, K, L, Dt)
        feature_emb = self.feature_embedding(feature_ids)  # (B, K, Df) or (K, Df)
        feature_emb = feature_emb.expand(batch, n_rows, -1)  # (B, K, Df)
        feature_emb = feature_emb.unsqueeze(2).expand(batch, n_rows, length, -1)  # (B, K, L, Df)
        mask = cond_mask.to(torch.float32).unsqueeze(-1)  # (B, K, L, 1)
        return torch.cat([time_emb, feature_emb, mask], dim=-1)  # (B, K, L, side)
