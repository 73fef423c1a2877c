r"""Learning curves of gradient flow in the proportional limit: two-point ridge theory and contour quadrature.

Model (docs/learning_curves.md): F(Gamma) = (1/M)[sum_mu (y_mu - <Gamma, H_mu>)^2 + lam M0 ||Gamma||^2],
dGamma/dt = -(D/2) grad F, Gamma(0) = 0, so Gamma(t) = f_t(D K) D b with f_t(x) = (1 - e^{-t x})/x,
K = (Phi^T Phi + lam M0)/M, b = Phi^T y/M.

Step 1 (exact, finite D): (z - D K)^{-1} D b = -Gamma_{lam'(z)}, the ridge solution on the same data
at the complex ridge lam'(z) = lam - z tau/kappa (D K - z = (D/M)(Phi^T Phi + M0 lam') and
M/(D M0) = tau/kappa). With a contour around the spectrum of D K that leaves 0 outside,

    Gamma(t) = Gamma_lam + (1/2 pi i) oint (e^{-t z}/z) Gamma_{lam'(z)} dz

(Cauchy: (1/2 pi i) oint e^{-tz}/z (z - DK)^{-1} D b dz = e^{-t DK} (DK)^{-1} D b, since e^{-tz}/z is
analytic inside the contour; Gamma_lam = (DK)^{-1} D b is the ridge solution, i.e. ``solve``).

Step 2 (one-point theory at complex ridge): the reduced saddle point G(u) = tau - 1 + u g(c + u) -
lam' kappa/u = 0 of :mod:`lowrank_icl.numerics.forward.core`, with lam' kappa = lam kappa - z tau, is
solved for u explicitly in z:

    z(u) = [lam kappa - (tau - 1) u - u^2 g(c + u)] / tau,

and continued off the real axis along the contour by Newton on (u, g~) jointly (g~ the span-A
Stieltjes transform, a root of the pool quadratic), started on the real branch at the contour's left
end. The spectral edges of D K are the critical values of z(u) (dz/du = 0), found by bisection.

Step 3 (two-point theory, derived in docs/derivations.md): the ridge solutions at two ridges on the
same data are jointly equivalent to

    Gamma_a = (S + N_a)(S + nu_a)^{-1},   E[N_a^T N_b]/D-normalized covariance (E_ab/tau)(S + c I),

with S the pool second moment, nu_a = c + u_a, c = (1 + sigma^2)/alpha and the cross training error
E_12 = s2 - m_1 - m_2 + q_12 + c q_bar_12 (s2 = 1 + sigma^2) fixed by one linear equation:
E_12 = E_12^signal / (1 - K_12/tau). All two-point integrals are divided differences of the pool's
Stieltjes transform, evaluated without subtraction from the pool quadratic
(:func:`pool_divided_difference`). At nu_1 = nu_2 every formula is the one-point solution of ``solve``.

Step 4: m_X(t) = m_X(inf) + sum_j W_j(t) m_X(z_j) and q_X(t) = sum_{kl} W_k W_l q_X(z_k, z_l) over the
nodes {0} U {z_j} with W_0 = 1 (the node z = 0 is lam' = lam) and W_j(t) the trapezoid weights of
(1/2 pi i) e^{-t z}/z dz on an ellipse around the spectrum; the quadrature error is estimated by
the same rule on every other node (reported as ``residual``).
"""
from __future__ import annotations

import numpy as np

from lowrank_icl.numerics.results import ConvergenceReport


def pool_divided_difference(t1, t2, nu1, nu2, kappa, rho):
    r"""int dmu_A(s) / ((s + nu1)(s + nu2)) for the span-A law of the pool, without subtraction.

    t_a = g~(nu_a) = int dmu_A/(s + nu_a) are roots of -rho nu t^2 + (rho - kappa - kappa rho nu) t + kappa rho = 0.
    Subtracting the two quadratics and dividing by t1 - t2 gives

        (t2 - t1)/(nu1 - nu2) = rho t2 (t2 + kappa) / (rho nu1 (t1 + t2) + kappa rho nu1 + kappa - rho),

    which at nu1 = nu2 is -dg~/dnu = rho t (t + kappa)/sqrt(disc). kappa = inf (population law,
    t = rho/(1 + rho nu)): t1 t2. Works for real and complex arrays (broadcast).
    """
    inf = np.isinf(np.asarray(kappa, dtype=float))
    if not np.any(inf):   # also the path of mpmath scalars (rounding tests)
        return rho * t2 * (t2 + kappa) / (rho * nu1 * (t1 + t2) + kappa * rho * nu1 + kappa - rho)
    k = np.where(inf, 1.0, kappa)
    with np.errstate(invalid="ignore", divide="ignore"):
        fin = rho * t2 * (t2 + k) / (rho * nu1 * (t1 + t2) + k * rho * nu1 + k - rho)
    return np.where(inf, t1 * t2, fin)


def pool_transform(nu, kappa, rho):
    """g~(nu) on the real axis outside the spectrum (nu > -s_min or nu < -s_max), any kappa (inf allowed).

    Roots of -rho nu t^2 + (rho - kappa - kappa rho nu) t + kappa rho = 0: for nu > 0 the positive root;
    for nu < 0 the root of smaller modulus (the two meet at the spectral edges only).
    """
    nu = np.asarray(nu, dtype=float)
    kappa = np.broadcast_to(np.asarray(kappa, dtype=float), nu.shape)
    rho = np.broadcast_to(np.asarray(rho, dtype=float), nu.shape)
    inf = np.isinf(kappa)
    k = np.where(inf, 1.0, kappa)
    a, b, c0 = -rho * nu, (rho - k) - k * rho * nu, k * rho
    disc = np.sqrt(np.maximum(b * b - 4 * a * c0, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        # roots in cancellation-free form: q = -(b + sign(b) disc)/2, roots q/a and c0/q
        sgn = np.where(b >= 0, 1.0, -1.0)
        qq = -(b + sgn * disc) / 2
        r1, r2 = qq / a, c0 / qq
    pos = np.where(r1 > 0, r1, r2)
    small = np.where(np.abs(r1) < np.abs(r2), r1, r2)
    t = np.where(nu > 0, pos, small)
    return np.where(inf, rho / (1 + rho * nu), t)


def spectrum_edges(kappa, rho):
    """(s_min, s_max) of the pool spectrum law mu (atoms included): S on span A is (1/rho) MP(rho/kappa)."""
    kappa = np.asarray(kappa, dtype=float)
    rho = np.asarray(rho, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        gam = np.where(np.isinf(kappa), 0.0, rho / kappa)
    s_max = (1 + np.sqrt(gam)) ** 2 / rho
    s_min_a = np.where(gam < 1, (1 - np.sqrt(gam)) ** 2 / rho, 0.0)
    s_min = np.where(rho < 1, 0.0, s_min_a)
    return s_min, s_max


def two_point(nu1, t1, nu2, t2, *, tau, kappa, rho, sigma, alpha):
    r"""Two-point order parameters of ridge solutions at effective ridges nu1, nu2 on the same data.

    ``t_a`` = g~(nu_a). Returns a dict of arrays (broadcast): q (pool law, TM), q0 (span-A law, IDG),
    q_bar (isotropic, ODG), E (cross training error E_12), and the one-point linear parts at each side
    m1, m2, m0_1, m0_2, m_bar1, m_bar2. With I_k = int s^k dmu/((s + nu1)(s + nu2)) (law of S, mean 1),
    J_k the same on span A, and f = E_12/tau:

        q_12 = I3 + f (I2 + c I1),  q_bar_12 = I2 + f (I1 + c I0),  q0_12 = J2 + f (J1 + c J0),
        E_12 = [s2 - Mm(nu1) - Mm(nu2) + I3 + c I2] / (1 - (I2 + 2c I1 + c^2 I0)/tau).
    """
    c = (1 + sigma**2) / alpha
    s2 = 1 + sigma**2
    g1 = rho * t1 + (1 - rho) / nu1
    g2 = rho * t2 + (1 - rho) / nu2
    J0 = pool_divided_difference(t1, t2, nu1, nu2, kappa, rho)
    I0 = rho * J0 + (1 - rho) / (nu1 * nu2)
    I1 = g2 - nu1 * I0
    I2 = (1 - nu2 * g2) - nu1 * I1
    I3 = (1 - nu2 * (1 - nu2 * g2)) - nu1 * I2
    J1 = t2 - nu1 * J0
    J2 = (1 - nu2 * t2) - nu1 * J1
    Mm1 = 1 - nu1 * (1 - nu1 * g1)
    Mm2 = 1 - nu2 * (1 - nu2 * g2)
    K12 = I2 + 2 * c * I1 + c * c * I0
    E = (s2 - Mm1 - Mm2 + I3 + c * I2) / (1 - K12 / tau)
    f = E / tau
    return {"q": I3 + f * (I2 + c * I1), "q_bar": I2 + f * (I1 + c * I0), "q0": J2 + f * (J1 + c * J0), "E": E,
            "m1": Mm1, "m2": Mm2, "m_bar1": 1 - nu1 * g1, "m_bar2": 1 - nu2 * g2,
            "m0_1": 1 - nu1 * t1, "m0_2": 1 - nu2 * t2}


# ----------------------------------------------------------------------------------------------
# the one-point theory along z: z(u), its critical points (spectral edges), continuation off the axis

def _g_and_g2(u, t, c, kappa, rho):
    """g = int dmu/(s + nu) and g2 = int dmu/(s + nu)^2 at nu = c + u from t = g~(nu) (real axis)."""
    nu = c + u
    g = rho * t + (1 - rho) / nu
    g2 = rho * pool_divided_difference(t, t, nu, nu, kappa, rho) + (1 - rho) / nu**2
    return g, g2


def _z_of_u(u, t, c, tau, lk, rho):
    """z(u) = [lam kappa - (tau - 1) u - u^2 g(c + u)] / tau (the reduced equation solved for z)."""
    g = rho * t + (1 - rho) / (c + u)
    return (lk - (tau - 1) * u - u * u * g) / tau


def _slope_sign(u, c, tau, kappa, rho):
    """f(u) = tau - 1 + 2 u g - u^2 g2 = -tau dz/du (real u)."""
    t = pool_transform(c + u, kappa, rho)
    g, g2 = _g_and_g2(u, t, c, kappa, rho)
    return tau - 1 + 2 * u * g - u * u * g2


def _bisect(fun, lo, hi, iters=200):
    """Vectorized bisection for a sign change of fun between lo (fun < 0) and hi (fun > 0)."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    for _ in range(iters):
        mid = (lo + hi) / 2
        neg = fun(mid) < 0
        lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
        if np.all(np.abs(hi - lo) <= 4e-16 * np.maximum(1.0, np.abs(mid))):
            break
    return (lo + hi) / 2


def spectral_edges(u0, *, c, tau, kappa, rho, lk):
    """Edges (z_lo, z_hi) of the limiting spectrum of D K, and the critical points (u_lo, u_hi).

    On the physical real branch z(u) decreases for u > u_lo (z(u0) = 0) and increases from
    u -> -infinity (z ~ -u) to its minimum z_hi at u_hi < -c - s_max; both are zeros of dz/du, found by
    bisection of f(u) = -tau dz/du, which runs to -infinity at the spectral edges of the pool.
    """
    s_min, s_max = spectrum_edges(kappa, rho)
    tiny = 1e-12 * (1 + c + s_max)
    left = -c - s_min + tiny
    u_lo = _bisect(lambda u: _slope_sign(u, c, tau, kappa, rho), left, u0)
    right = -c - s_max - tiny
    far = right - 10 * (1 + c + s_max + np.abs(tau - 1))
    u_hi = _bisect(lambda u: -_slope_sign(u, c, tau, kappa, rho), far, right)
    z_lo = _z_of_u(u_lo, pool_transform(c + u_lo, kappa, rho), c, tau, lk, rho)
    z_hi = _z_of_u(u_hi, pool_transform(c + u_hi, kappa, rho), c, tau, lk, rho)
    return z_lo, z_hi, u_lo, u_hi


def _newton_ut(z, u, t, *, c, tau, kappa, rho, lk, iters=30):
    """Solve [pool quadratic in t at nu = c + u, tau z = lam kappa - (tau - 1) u - u^2 g] for (u, t) by
    Newton from (u, t) (complex arrays). Returns (u, t, relative residual of the second equation)."""
    inf = np.isinf(np.real(kappa))
    k = np.where(inf, 1.0, kappa)
    krho = k * rho
    tz = tau * z - lk
    for _ in range(iters):
        nu = c + u
        inv_nu = 1 / nu
        g = rho * t + (1 - rho) * inv_nu
        rnt = rho * nu * t
        F1 = np.where(inf, t + rnt - rho, -rnt * t + (rho - k - krho * nu) * t + krho)
        a11 = np.where(inf, rho * t, -rho * t * t - krho * t)
        a12 = np.where(inf, 1 + rho * nu, -2 * rnt + rho - k - krho * nu)
        uu = u * u
        F2 = tz + (tau - 1) * u + uu * g
        a21 = (tau - 1) + 2 * u * g - uu * (1 - rho) * inv_nu * inv_nu
        a22 = uu * rho
        det = a11 * a22 - a12 * a21
        du = (F1 * a22 - a12 * F2) / det
        dt = (a11 * F2 - a21 * F1) / det
        u, t = u - du, t - dt
        if np.all(np.abs(du) <= 1e-15 * np.abs(u)) and np.all(np.abs(dt) <= 1e-15 * np.abs(t)):
            break
    nu = c + u
    g = rho * t + (1 - rho) / nu
    r2 = np.abs(tau * z - lk + (tau - 1) * u + u * u * g) / (np.abs(tau * z) + np.abs(lk) + np.abs((tau - 1) * u)
                                                            + np.abs(u * u * g))
    return u, t, r2


# ----------------------------------------------------------------------------------------------
# contour quadrature of the learning curves

ORDER_NAMES = ("q", "m", "q_bar", "m_bar", "q0", "m0")


def _default_nodes(eta):
    """Trapezoid nodes on the ellipse: the error decays like exp(-N eta); N eta = 48, so that the rule on
    every other node (the error estimate) is already ~exp(-24) (at least 64 nodes, at most 4096)."""
    n = int(np.ceil(48.0 / max(float(np.min(eta)), 1e-6)))
    return int(min(4096, max(64, 4 * ((n + 3) // 4))))


def _contour(z_lo, z_hi, n_nodes):
    """Ellipse with foci z_lo, z_hi halfway (in the elliptic coordinate) between the spectrum and z = 0.

    z(theta) = m - h cosh(eta) cos(theta) - i h sinh(eta) sin(theta), counterclockwise from its left end
    x_L = m - h cosh(eta) in (0, z_lo); eta = eta_0/2 with cosh(eta_0) = m/h (the ellipse through 0).
    Returns nodes (P, N), dz/dtheta (P, N), eta (P,).
    """
    m = (z_lo + z_hi) / 2
    h = (z_hi - z_lo) / 2
    eta = np.arccosh(m / h) / 2
    theta = 2 * np.pi * np.arange(n_nodes) / n_nodes
    ch, sh = (np.cosh(eta) * h)[:, None], (np.sinh(eta) * h)[:, None]
    z = m[:, None] - ch * np.cos(theta) - 1j * sh * np.sin(theta)
    dz = ch * np.sin(theta) - 1j * sh * np.cos(theta)
    return z, dz, eta


def _continue_along(z, u_start, t_start, p):
    """(u, t) at the nodes z[:, 0..N/2] by continuation from the real solution at z[:, 0].

    Each node starts Newton from the linear extrapolation of the two previous nodes; a node whose
    Newton residual stays above 1e-13 is redone in 8 sub-steps from the previous node.
    """
    P, n = z.shape
    half = n // 2
    u = np.empty((P, half + 1), dtype=complex)
    t = np.empty((P, half + 1), dtype=complex)
    u[:, 0], t[:, 0] = u_start, t_start
    worst = np.zeros(P)
    for j in range(1, half + 1):
        if j >= 2:
            ratio = (z[:, j] - z[:, j - 1]) / (z[:, j - 1] - z[:, j - 2])
            u0 = u[:, j - 1] + ratio * (u[:, j - 1] - u[:, j - 2])
            t0 = t[:, j - 1] + ratio * (t[:, j - 1] - t[:, j - 2])
        else:
            u0, t0 = u[:, 0], t[:, 0]
        uc, tc, r = _newton_ut(z[:, j], u0, t0, **p, iters=12)
        bad = ~(r <= 1e-13)
        if np.any(bad):
            sub = {k: (v[bad] if np.ndim(v) else v) for k, v in p.items()}
            ub, tb = u[bad, j - 1], t[bad, j - 1]
            for step in range(1, 9):
                zz = z[bad, j - 1] + (z[bad, j] - z[bad, j - 1]) * step / 8
                ub, tb, rb = _newton_ut(zz, ub, tb, **sub, iters=30)
            uc[bad], tc[bad], r[bad] = ub, tb, rb
        worst = np.maximum(worst, r)
        u[:, j], t[:, j] = uc, tc
    return u, t, worst


class FlowTheory(ConvergenceReport):
    """Learning curves of the theory: order parameters and TM/IDG/ODG errors at each time.

    Arrays have shape ``param_shape + (T,)``. ``residual`` (param_shape) is the largest quadrature
    error estimate (difference between the trapezoid rule on all nodes and on every other node) over
    times and order parameters, or the inner solves' residual if larger; ``converged`` =
    residual <= ``tolerance`` and every inner solve converged; ``reason`` explains a failure and
    ``message`` says it in one line; ``iterations`` is the number of contour nodes evaluated.

    Attributes
    ----------
    params : dict
        The model parameters (broadcast arrays).
    time : ndarray
        Training times.
    q, m, q_bar, m_bar, q0, m0 : ndarray
        Order parameters at each point and time.
    converged, residual, reason : ndarray
        Quadrature and inner-solve diagnostics (above).
    nodes : int
        Contour nodes (also ``iterations``).
    z_lo, z_hi : ndarray
        Spectral edges of D K.
    """

    def __init__(self, params, times, order, residual, converged, reason, nodes, edges):
        self.params, self.time = params, times
        for k, v in order.items():
            setattr(self, k, v)
        self.residual, self.converged, self.reason, self.nodes = residual, converged, reason, nodes
        self.z_lo, self.z_hi = edges

    @property
    def iterations(self) -> int:
        return int(self.nodes)

    def errors(self, alpha_test=None, sigma_test=None):
        """:class:`~lowrank_icl.numerics.forward.results.ForwardErrors` at every time (arrays of shape
        ``parameters + (times,)``): e_X(t) = sigma_t^2 + 1 - 2 m_X + q_X + (1 + sigma_t^2) q_bar/alpha_t,
        X = TM (m, q), IDG (m0, q0), ODG (m_bar, q_bar). Defaults: the training alpha and sigma."""
        from lowrank_icl.numerics.forward.results import ForwardErrors
        from lowrank_icl.theory.forward.saddle_point import asymptotic_error
        a_t = self.params["alpha"] if alpha_test is None else np.asarray(alpha_test, dtype=float)
        s_t = self.params["sigma"] if sigma_test is None else np.asarray(sigma_test, dtype=float)
        a_t, s_t = np.asarray(a_t)[..., None], np.asarray(s_t)[..., None]
        return ForwardErrors(tm=asymptotic_error(self.m, self.q, self.q_bar, a_t, s_t),
                             idg=asymptotic_error(self.m0, self.q0, self.q_bar, a_t, s_t),
                             odg=asymptotic_error(self.m_bar, self.q_bar, self.q_bar, a_t, s_t))

    def parameters(self) -> dict:
        """The model parameters (arrays of the broadcast shape)."""
        return dict(self.params)

    def to_dict(self, alpha_test=None, sigma_test=None) -> dict:
        """JSON document: ``parameters``, ``version``, ``time`` beside ``errors`` (tm/idg/odg at each
        time), ``order_parameters``, ``converged``, ``residual`` (quadrature error estimate), ``reason``,
        ``nodes`` and the spectral edges of D K."""
        from lowrank_icl.numerics._json import json_document

        def plain(x):   # 0-d arrays as Python scalars
            return x.item() if isinstance(x, np.ndarray) and x.ndim == 0 else x
        err = self.errors(alpha_test, sigma_test)
        return json_document({k: plain(v) for k, v in self.parameters().items()}, {
            "time": self.time, "errors": {k: getattr(err, k) for k in ("tm", "idg", "odg")},
            "order_parameters": {k: getattr(self, k) for k in ORDER_NAMES},
            "converged": plain(self.converged), "residual": plain(self.residual), "reason": plain(self.reason),
            "message": self.message, "iterations": self.iterations, "nodes": self.nodes, "spectral_edges": {"z_lo": plain(self.z_lo), "z_hi": plain(self.z_hi)}})

    def __repr__(self):
        return (f"FlowTheory(points={int(np.size(self.residual))}, times={np.size(self.time)}, "
                f"converged={bool(np.all(self.converged))}, residual={float(np.max(self.residual)):.1e})")


def flow_theory(*, alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, time=None, steps=None, lr=None,
                nodes: int | None = None, tolerance: float = 1e-8) -> FlowTheory:
    r"""D -> infinity learning curves of gradient flow from zero (module docstring).

    Parameters
    ----------
    alpha, tau, kappa, rho, sigma, lam : float or array
        As in ``solve`` (broadcast together); kappa may be inf (then lam = 0).
    time : float or 1-D array
        Training times t >= 0 (inf allowed).
    steps, lr : 1-D array of int, float
        Gradient descent instead of the flow: Gamma_k = (1 - (1 - lr D K)^k) K^{-1} b after k = ``steps``
        steps of size ``lr`` (reported at times k lr): the weight e^{-t z} becomes (1 - lr z)^k. Points
        with lr >= 2/z_hi (descent diverges in the limit) are reported unconverged.
    nodes : int, optional
        Trapezoid nodes on the contour (default from the distance of the spectrum to 0).
    tolerance : float
        Largest accepted quadrature error estimate for ``converged``.

    Returns
    -------
    FlowTheory
    """
    from lowrank_icl.numerics.forward.core import lam_kappa
    from lowrank_icl.numerics.forward.solver import solve
    if (time is None) == (steps is None):
        raise ValueError("give time= (gradient flow) or steps= with lr= (gradient descent)")
    descent = None
    if steps is not None:
        if lr is None or not np.isfinite(float(lr)) or float(lr) <= 0:
            raise ValueError(f"steps= needs lr= > 0, the gradient-descent step (got {lr!r})")
        k = np.atleast_1d(np.asarray(steps, dtype=float))
        if k.ndim != 1 or k.size == 0 or np.any(k < 0) or np.any(k != np.floor(k)):
            raise ValueError("steps must be a nonempty 1-D list of integers >= 0")
        descent = (k, float(lr))
        time = k * float(lr)
    times = np.atleast_1d(np.asarray(time, dtype=float))
    if times.ndim != 1 or times.size == 0 or np.any(np.isnan(times)) or np.any(times < 0):
        raise ValueError("time must be a scalar or a nonempty 1-D array of values >= 0 (inf allowed)")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        return _flow_theory(alpha, tau, kappa, rho, sigma, lam, times, nodes, tolerance, descent)


def _flow_theory(alpha, tau, kappa, rho, sigma, lam, times, nodes, tolerance, descent=None):
    from lowrank_icl.numerics.forward.core import lam_kappa
    from lowrank_icl.numerics.forward.solver import solve
    sol = solve(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam)
    shape = np.shape(sol.nu)
    b = {k: np.ravel(np.broadcast_to(np.asarray(v, dtype=float), shape)) for k, v in
         dict(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam).items()}
    P = b["alpha"].size
    c = (1 + b["sigma"] ** 2) / b["alpha"]
    lk = lam_kappa(b["lam"], b["kappa"])
    nu0 = np.ravel(np.asarray(sol.nu, dtype=float))
    u0 = nu0 - c
    t0 = pool_transform(nu0, b["kappa"], b["rho"])
    p = dict(c=c, tau=b["tau"], kappa=b["kappa"], rho=b["rho"], lk=lk)
    z_lo, z_hi, u_lo, _ = spectral_edges(u0, **p)
    m = (z_lo + z_hi) / 2
    h = (z_hi - z_lo) / 2
    eta = np.arccosh(m / h) / 2
    n = int(nodes) if nodes is not None else _default_nodes(eta)
    if n < 8 or n % 4:
        raise ValueError(f"nodes must be a multiple of 4, at least 8 (got {n})")
    z, dz, _ = _contour(z_lo, z_hi, n)
    x_left = z[:, 0].real
    u_start = _bisect(lambda uu: x_left - _z_of_u(uu, pool_transform(c + uu, b["kappa"], b["rho"]), c, b["tau"],
                                                  lk, b["rho"]), u_lo, u0)
    t_start = pool_transform(c + u_start, b["kappa"], b["rho"])
    uh, th, inner = _continue_along(z, u_start, t_start, p)
    # the right end must land on the physical real branch (nu < -s_max): a wrong sheet is caught here
    t_right = pool_transform(c + uh[:, -1].real, b["kappa"], b["rho"])
    branch_err = np.abs(th[:, -1] - t_right) / np.abs(t_right) + np.abs(uh[:, -1].imag) / np.abs(uh[:, -1])
    half = n // 2
    # Conjugate symmetry: node j and node N - j are conjugates, with conjugate weights and values, and
    # q(conj a, conj b) = conj q(a, b). With R the real nodes (z = 0, the two ends of the ellipse) and C
    # the nodes 1..N/2-1, sum_{ab} W_a W_b Q_ab = Q(R,R) + 4 Re Q(R,C) + 2 Re Q(C,C) + 2 Q(C, conj C)
    # (each term short for the weighted sum); half the evaluations of the full double sum.
    U = np.concatenate([u0[:, None].astype(complex), uh[:, [0, half]], uh[:, 1:half]], axis=1)
    Tt = np.concatenate([t0[:, None].astype(complex), th[:, [0, half]], th[:, 1:half]], axis=1)
    Nu = c[:, None] + U
    zc = np.concatenate([z[:, [0, half]], z[:, 1:half]], axis=1)
    dzc = np.concatenate([dz[:, [0, half]], dz[:, 1:half]], axis=1)
    if descent is None:
        finite_t = np.where(np.isinf(times), 0.0, times)
        ez = np.exp(-finite_t[None, :, None] * zc[:, None, :])        # (P, T, N/2 + 1)
        ez = np.where(np.isinf(times)[None, :, None], 0.0, ez)
    else:   # gradient descent: (1 - lr z)^k in place of e^{-t z}
        ez = np.power(1 - descent[1] * zc[:, None, :], descent[0][None, :, None])
    W = np.concatenate([np.ones((P, times.size, 1)), (dzc / (1j * n * zc))[:, None, :] * ez], axis=2)
    n_a = W.shape[2]
    # every other node: node 0, the two ends (j = 0, N/2: N/2 is even) and the even interior nodes
    sub = np.concatenate([[0, 1, 2], 3 + np.flatnonzero(np.arange(1, half) % 2 == 0)])
    scale_sub = np.concatenate([[1.0, 2.0, 2.0], np.full(sub.size - 3, 2.0)])
    out = {k: np.empty((P, times.size)) for k in ORDER_NAMES}
    half_out = {k: np.empty((P, times.size)) for k in ORDER_NAMES}
    kw = {k: b[k][:, None, None] for k in ("tau", "kappa", "rho", "sigma", "alpha")}

    def weighted(w, lin, qa, qc):
        """(linear sums, quadratic sums) of one rule from values on A = R U C and on C x conj C."""
        wr, wc = w[:, :3], w[:, 3:]
        lin_out = {k: (wr @ v[:3]).real + 2 * (wc @ v[3:]).real for k, v in lin.items()}
        quad_out = {}
        for k in ("q", "q_bar", "q0"):
            Q = qa[k]
            rr = np.sum((wr @ Q[:3, :3]) * wr, axis=1).real
            rc = np.sum((wr @ Q[:3, 3:]) * wc, axis=1).real
            cc = np.sum((wc @ Q[3:, 3:]) * wc, axis=1).real
            cbar = np.sum((wc @ qc[k]) * np.conj(wc), axis=1).real
            quad_out[k] = rr + 4 * rc + 2 * cc + 2 * cbar
        return lin_out, quad_out

    for i in range(P):
        sl = slice(i, i + 1)
        args = {k: v[sl] for k, v in kw.items()}
        tp = two_point(Nu[sl, :, None], Tt[sl, :, None], Nu[sl, None, :], Tt[sl, None, :], **args)
        tc = two_point(Nu[sl, 3:, None], Tt[sl, 3:, None], np.conj(Nu[sl, None, 3:]), np.conj(Tt[sl, None, 3:]),
                       **args)
        lin = {"m": tp["m1"][0, :, 0], "m_bar": tp["m_bar1"][0, :, 0], "m0": tp["m0_1"][0, :, 0]}
        qa = {k: tp[k][0] for k in ("q", "q_bar", "q0")}
        qc = {k: tc[k][0] for k in ("q", "q_bar", "q0")}
        lo, qo = weighted(W[i], lin, qa, qc)
        ws = W[i][:, sub] * scale_sub
        csub = sub[3:] - 3
        lh, qh = weighted(ws, {k: v[sub] for k, v in lin.items()}, {k: v[np.ix_(sub, sub)] for k, v in qa.items()},
                          {k: v[np.ix_(csub, csub)] for k, v in qc.items()})
        for k in ORDER_NAMES:
            out[k][i] = {**lo, **qo}[k]
            half_out[k][i] = {**lh, **qh}[k]
    del n_a
    quad = np.max([np.max(np.abs(out[k] - half_out[k]), axis=1) for k in ORDER_NAMES], axis=0)
    residual = np.maximum.reduce([quad, inner, branch_err])
    solved = np.ravel(np.asarray(sol.converged))
    unstable = np.zeros(P, dtype=bool) if descent is None else descent[1] * z_hi >= 2
    converged = solved & (residual <= tolerance) & np.isfinite(residual) & ~unstable
    reason = np.array([""] * P, dtype=object)
    for i in np.flatnonzero(~converged):
        if unstable[i]:
            reason[i] = f"lr = {descent[1]:g} >= 2/z_hi = {2 / z_hi[i]:.6g}: gradient descent diverges"
        elif b["lam"][i] == 0 and b["tau"][i] == 1:
            reason[i] = ("lam = 0 at tau = 1: the t = infinity solution diverges (interpolation threshold), and the "
                         "contour representation needs it; use lam > 0")
        elif not solved[i]:
            reason[i] = "the t = infinity saddle point did not converge"
        elif branch_err[i] > tolerance:
            reason[i] = "the continuation off the real axis left the physical branch"
        else:
            reason[i] = f"contour quadrature error estimate {residual[i]:.1e} > {tolerance:.0e}: raise nodes="
    order = {k: v.reshape(shape + (times.size,)) for k, v in out.items()}
    params = {k: v.reshape(shape) for k, v in b.items()}
    return FlowTheory(params, times, order, residual.reshape(shape), converged.reshape(shape),
                      reason.reshape(shape), n, (z_lo.reshape(shape), z_hi.reshape(shape)))
