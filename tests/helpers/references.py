"""Independent NumPy float64 reference implementations used by several tests."""

import numpy as np


def cka_kernel_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. (2019) eq. via Gram matrices: HSIC(K,L)/sqrt(HSIC(K,K) HSIC(L,L)), H = I - 11^T/n."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    n = x.shape[0]
    k, l_ = x @ x.T, y @ y.T
    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))
