r"""Asymptotic limits of the forward saddle point, derived with sympy from the existing derivations.

Every limit is obtained by feeding series (or limits) of the pool transform t = g~(-nu) into the
cancellation-free moments :func:`lowrank_icl.theory.forward.stieltjes.stable_moments` and the explicit
solution :func:`lowrank_icl.theory.forward.saddle_point.evaluate_explicit`; nothing is transcribed.

1. alpha -> infinity at lam = 0, tau > 1 (:func:`large_alpha_expansion`). Then u = 0 and
   nu = c = (1 + sigma^2)/alpha. t(nu) solves the pool quadratic rho z t^2 + (kappa rho z + rho
   - kappa) t + kappa rho = 0 at z = -nu; order by order in nu (:func:`derive_t_series`):

       kappa > rho:  t = kappa rho/(kappa - rho) - kappa^3 rho^2/(kappa - rho)^3 nu + O(nu^2),
       kappa < rho:  t = (1 - kappa/rho)/nu + kappa^2/(rho - kappa) + O(nu).

   Each quantity X is then expanded as X = alpha^p (X_0 + X_1/alpha + X_2/alpha^2 + ...)
   (:func:`derive_large_alpha`); the predictor returns alpha^p (X_0 + X_1/alpha).
2. tau -> infinity, any lam (:func:`large_tau_limit`): nu -> c, the noise parts (all proportional to
   E/tau) vanish, E -> sigma^2 + W + c A2; q -> Q3(c), q_bar -> A2(c), q0 -> A2(c)/rho, m -> Mm(c), ...
3. kappa -> infinity at lam = 0 (:func:`large_kappa_limit`): S -> (1/rho) P_A, t -> rho/(1 + rho nu),
   moments of the two-atom law (weight rho at 1/rho, 1 - rho at 0).
4. sigma -> 0 at lam = 0, tau > 1 (:func:`sigma2_slope`): d e_X/d sigma^2 at sigma = 0 by the chain rule
   through nu = (1 + sigma^2)/alpha (lam > 0 or tau < 1 not implemented).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from lowrank_icl.theory.forward.saddle_point import asymptotic_error, evaluate_explicit
from lowrank_icl.theory.forward.stieltjes import (PoolMoments, stable_moments, derive_pool_quadratic,
                                          kappa as _kappa_q, pool_moments, rho as _rho_q, z as _z_q)

QUANTITIES = ("m", "m_bar", "m0", "q", "q_bar", "q0", "e_tm", "e_idg", "e_odg")

# symbols of this module
kappa, rho, sigma, alpha, eps, nu = sp.symbols("kappa rho sigma alpha epsilon nu", positive=True)
T = sp.Symbol("T", positive=True)       # tau - 1 > 0
tau = sp.Symbol("tau", positive=True)
delta = sp.Symbol("delta", positive=True)  # |kappa - rho|

CASE_KAPPA_ABOVE = "kappa>rho"
CASE_KAPPA_BELOW = "kappa<rho"


# ---------------------------------------------------------------------------------------------
# input validation (theory imports nothing internal, so a small local checker)

def _real(name, value, lower=None, upper=None, lower_inclusive=False, upper_inclusive=True):
    arr = np.asarray(value, dtype=float)
    bad = ~np.isfinite(arr)
    if lower is not None:
        bad |= (arr < lower) if lower_inclusive else (arr <= lower)
    if upper is not None:
        bad |= (arr > upper) if upper_inclusive else (arr >= upper)
    if np.any(bad):
        lo = "" if lower is None else f"{'>=' if lower_inclusive else '>'} {lower:g}"
        hi = "" if upper is None else f"{'<=' if upper_inclusive else '<'} {upper:g}"
        rng = " and ".join(x for x in (lo, hi) if x)
        raise ValueError(f"{name} must be finite and {rng} (got {arr[bad].ravel()[0]!r})")
    return arr


# ---------------------------------------------------------------------------------------------
# 1. alpha -> infinity

@lru_cache(maxsize=None)
def derive_t_series(case: str, n_terms: int = 5):
    """Series of t = g~(-nu) in nu from the pool quadratic, by undetermined coefficients.

    Returns (coeffs, start): t = sum_i coeffs[i] nu^(start + i), start = 0 for kappa > rho
    (t(0) finite) and start = -1 for kappa < rho (the atom of weight 1 - kappa/rho at s = 0).
    Each order of P(t, -nu) nu^2 = 0 is linear in the newest coefficient except the lowest,
    where the root that is positive on the case's domain is taken.
    """
    quad = derive_pool_quadratic()
    start = 0 if case == CASE_KAPPA_ABOVE else -1
    cs = sp.symbols(f"a0:{n_terms}")
    t_trial = sum(cs[i] * nu ** (start + i) for i in range(n_terms))
    poly_expr = sp.expand((quad.a * t_trial**2 + quad.b * t_trial + quad.c)
                          .subs({_kappa_q: kappa, _rho_q: rho, _z_q: -nu}) * nu**2)
    poly = sp.Poly(poly_expr, nu)
    sol = {}
    dom = {kappa: rho + delta} if case == CASE_KAPPA_ABOVE else {rho: kappa + delta}
    for j in range(0, 3 * n_terms):
        coeff = sp.expand(poly.coeff_monomial(nu**j).subs(sol))
        free = [c for c in cs if c in coeff.free_symbols and c not in sol]
        if coeff == 0 or not free:
            continue
        roots = [sp.factor(x) for x in sp.solve(coeff, free[0])]
        if len(roots) > 1:  # lowest order: keep the root positive on the domain
            roots = [x for x in roots if sp.simplify(x.subs(dom)).is_positive]
        sol[free[0]] = roots[0]
        if len(sol) == n_terms:
            break
    return tuple(sp.factor(sol[c]) for c in cs), start


_MAX_TERMS = 4


class _Series:
    """Truncated Laurent series sum_j c_j eps^j + O(eps^prec) with sympy coefficients (exact
    arithmetic; each coefficient is kept cancelled). Enough of +, -, *, /, ** and sqrt to run the
    stable moment formulas and the explicit solution on series (sympy's own series() is far too slow)."""

    __array_priority__ = 100

    def __init__(self, terms, prec):
        self.prec = prec
        self.terms = {j: c for j, c in ((j, sp.cancel(c)) for j, c in terms.items() if j < prec) if c != 0}

    @staticmethod
    def lift(x, prec=10**6):
        return x if isinstance(x, _Series) else _Series({0: sp.sympify(x)}, prec)

    @property
    def val(self):
        return min(self.terms) if self.terms else self.prec

    def __add__(self, other):
        o = _Series.lift(other)
        keys = set(self.terms) | set(o.terms)
        return _Series({j: self.terms.get(j, 0) + o.terms.get(j, 0) for j in keys}, min(self.prec, o.prec))

    __radd__ = __add__

    def __neg__(self):
        return _Series({j: -c for j, c in self.terms.items()}, self.prec)

    def __sub__(self, other):
        return self + (-_Series.lift(other))

    def __rsub__(self, other):
        return _Series.lift(other) + (-self)

    def __mul__(self, other):
        o = _Series.lift(other)
        prec = min(self.val + o.prec, o.val + self.prec)
        out = {}
        for i, a in self.terms.items():
            for j, b in o.terms.items():
                if i + j < prec:
                    out[i + j] = out.get(i + j, 0) + a * b
        return _Series(out, prec)

    __rmul__ = __mul__

    def _unit_power(self, exponent):
        """self^exponent for any rational exponent via the binomial series of (1 + x)."""
        v = self.val
        if v >= self.prec:
            raise ZeroDivisionError("series has no known non-zero term")
        lead = self.terms[v]
        if len(self.terms) == 1 and self.prec > v + 50:  # an exact monomial
            shift = sp.Rational(exponent) * v
            return _Series({int(shift): lead ** sp.Rational(exponent)}, 10**6)
        rel = min(self.prec - v, _MAX_TERMS)
        x = _Series({j - v: c / lead for j, c in self.terms.items() if j != v}, rel)
        result, term = _Series({0: sp.Integer(1)}, rel), _Series({0: sp.Integer(1)}, rel)
        for n in range(1, rel + 1):
            term = term * x * (sp.Rational(exponent) - n + 1) / n
            result = result + term
        shift = sp.Rational(exponent) * v
        if shift != int(shift):
            raise ValueError("fractional power of eps")
        shift = int(shift)
        return _Series({j + shift: c * lead ** sp.Rational(exponent) for j, c in result.terms.items()},
                       result.prec + shift)

    def __truediv__(self, other):
        if isinstance(other, _Series):
            return self * other._unit_power(-1)
        return _Series({j: c / other for j, c in self.terms.items()}, self.prec)

    def __rtruediv__(self, other):
        return _Series.lift(other) * self._unit_power(-1)

    def __pow__(self, n):
        return self._unit_power(n)

    def sqrt(self):
        return self._unit_power(sp.Rational(1, 2))

    def __gt__(self, other):  # only used by evaluate_explicit's "u > 0" / "gap > 0" branches
        return bool(self.val == 0 and sp.simplify(self.terms[0] - other).is_positive)


def _symbolic_moments(t_expr, nu_expr, k=kappa, r=rho) -> PoolMoments:
    """PoolMoments of series (or sympy expressions) t and nu (stable rational forms of stieltjes)."""
    disc = (k * r * nu_expr + k - r) ** 2 + 4 * r**2 * k * nu_expr
    sd = disc.sqrt() if isinstance(disc, _Series) else sp.sqrt(disc)
    dgt = r * t_expr * (t_expr + k) / sd
    return stable_moments(t_expr, nu_expr, k, r, sd, dgt)


def _quantities(order, sig_test, alpha_test):
    """The nine reported quantities from an evaluate_explicit order dict (errors at sigma_t, alpha_t)."""
    out = {k: order[k] for k in ("m", "m_bar", "m0", "q", "q_bar", "q0")}
    out["e_tm"] = asymptotic_error(order["m"], order["q"], order["q_bar"], alpha_test, sig_test)
    out["e_idg"] = asymptotic_error(order["m0"], order["q0"], order["q_bar"], alpha_test, sig_test)
    out["e_odg"] = asymptotic_error(order["m_bar"], order["q_bar"], order["q_bar"], alpha_test, sig_test)
    return out


@dataclass(frozen=True)
class LargeAlphaTerms:
    """X = alpha^power (lead + next/alpha + next_next/alpha^2 + O(alpha^-3)), sympy in
    (tau, kappa, rho, sigma); ``rate`` is the exponent of alpha of the first non-zero term
    after ``next`` (the order at which the two-term remainder decays)."""

    power: int
    lead: sp.Expr
    next: sp.Expr
    next_next: sp.Expr
    rate: int


@lru_cache(maxsize=None)
def derive_large_alpha(case: str) -> dict:
    """Expand m, m_bar, m0, q, q_bar, q0, e_TM, e_IDG, e_ODG in 1/alpha at lam = 0, tau > 1.

    Substitutes the t series (:func:`derive_t_series`) and nu = (1 + sigma^2) eps, eps = 1/alpha,
    into the moments, evaluates the explicit solution at u = 0 (gap tau - 1), tests at
    alpha_t = alpha, sigma_t = sigma, and series-expands in eps. Returns {name: LargeAlphaTerms}.
    """
    n_t = 5
    coeffs, start = derive_t_series(case, n_t)
    dom = {kappa: rho + delta} if case == CASE_KAPPA_ABOVE else {rho: kappa + delta}
    back = {delta: kappa - rho} if case == CASE_KAPPA_ABOVE else {delta: rho - kappa}
    s2 = 1 + sigma**2
    nu_e = _Series({1: s2}, 10**6)
    t_e = _Series({start + i: (cf * s2 ** (start + i)).subs(dom) for i, cf in enumerate(coeffs)}, start + n_t)
    alpha_e = _Series({-1: sp.Integer(1)}, 10**6)
    k, r = kappa.subs(dom), rho.subs(dom)
    mo = _symbolic_moments(t_e, nu_e, k, r)
    order, _parts = evaluate_explicit(0, mo, alpha_e, 1 + T, k, r, sigma, 0)
    quantities = _quantities(order, sigma, alpha_e)
    out = {}
    for name, ser in quantities.items():
        ser = _Series(ser.terms, ser.prec)
        j0 = ser.val
        if ser.prec < j0 + 3:
            raise RuntimeError(f"not enough terms for {name}")
        cf = {j: sp.factor(ser.terms.get(j, 0)) for j in range(j0, ser.prec)}
        nn = [j for j in range(j0 + 2, ser.prec) if cf[j] != 0]
        sub = {**back, T: tau - 1}
        out[name] = LargeAlphaTerms(power=-j0, lead=sp.factor(cf[j0].subs(sub)),
                                    next=sp.factor(cf[j0 + 1].subs(sub)),
                                    next_next=sp.factor(cf[j0 + 2].subs(sub)),
                                    rate=-(nn[0] if nn else ser.prec))
    return out


# ---------------------------------------------------------------------------------------------
# the derivation above takes minutes of sympy; its result is persisted in a generated module

GENERATED_MODULE = "_large_alpha_generated.py"


def _derivation_functions():
    """Every function and class whose source the large-alpha derivation runs."""
    from lowrank_icl.theory.forward import saddle_point, stieltjes

    return (derive_large_alpha, derive_t_series, _Series, _symbolic_moments, _quantities,
            saddle_point.evaluate_explicit, saddle_point.protocol_parts, saddle_point.asymptotic_error,
            stieltjes.stable_moments, stieltjes.derive_pool_quadratic, stieltjes.PoolMoments)


def derivation_fingerprint() -> str:
    """sha256 of the source text of :func:`_derivation_functions` (docstrings included)."""
    import hashlib
    import inspect

    digest = hashlib.sha256()
    for obj in _derivation_functions():
        digest.update(inspect.getsource(obj).encode())
    return digest.hexdigest()


def render_large_alpha_module() -> str:
    """Source text of the generated module: every LargeAlphaTerms as sympy srepr strings."""
    lines = ['"""GENERATED by lowrank_icl.theory.forward.limits.write_large_alpha_module(); do not edit.',
             "", "The alpha -> infinity expansion terms of derive_large_alpha(case), as sympy srepr strings.",
             "Regenerate with: python -m lowrank_icl.theory.forward.limits", '"""',
             f"SYMPY_VERSION = {sp.__version__!r}", f"FINGERPRINT = {derivation_fingerprint()!r}", "TERMS = {"]
    for case in (CASE_KAPPA_ABOVE, CASE_KAPPA_BELOW):
        lines.append(f"    {case!r}: {{")
        for name, v in derive_large_alpha(case).items():
            lines.append(f"        {name!r}: ({v.power}, {sp.srepr(v.lead)!r},")
            lines.append(f"            {sp.srepr(v.next)!r},")
            lines.append(f"            {sp.srepr(v.next_next)!r}, {v.rate}),")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_large_alpha_module() -> str:
    """Run the derivation and write the generated module next to this one; returns its path."""
    from pathlib import Path

    path = Path(__file__).resolve().parent / GENERATED_MODULE
    text = render_large_alpha_module()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return str(path)


@lru_cache(maxsize=None)
def large_alpha_terms(case: str) -> dict:
    """The persisted result of :func:`derive_large_alpha` (fast): {name: LargeAlphaTerms}.

    The generated module records the fingerprint of the derivation sources; the tests check it
    against :func:`derivation_fingerprint` and (marked slow) regenerate and compare.
    """
    from lowrank_icl.theory.forward import _large_alpha_generated as gen

    out = {}
    for name, (power, lead, nxt, nn, rate) in gen.TERMS[case].items():
        lead_e, next_e, nn_e = (_from_srepr(x) for x in (lead, nxt, nn))
        out[name] = LargeAlphaTerms(power=power, lead=lead_e, next=next_e, next_next=nn_e, rate=rate)
    return out


def _from_srepr(text: str) -> sp.Expr:
    """Rebuild a sympy expression from its srepr (symbols come back with their assumptions, so they
    equal this module's tau, kappa, rho, sigma)."""
    return eval(text, {k: getattr(sp, k) for k in dir(sp) if not k.startswith("_")})  # noqa: S307 (our own file)


@lru_cache(maxsize=None)
def _large_alpha_numeric():
    args = (tau, kappa, rho, sigma)
    fns = {}
    for case in (CASE_KAPPA_ABOVE, CASE_KAPPA_BELOW):
        fns[case] = {k: (v.power, sp.lambdify(args, v.lead, "numpy"), sp.lambdify(args, v.next, "numpy"))
                     for k, v in large_alpha_terms(case).items()}
    return fns


def large_alpha_expansion(alpha_value, tau_value, kappa_value, rho_value, sigma_value, *, n_terms: int = 2) -> dict:
    r"""Two-term alpha -> infinity expansion at lam = 0, tau > 1, sigma_t = sigma, alpha_t = alpha.

    X(alpha) = alpha^p (X_0 + X_1/alpha) + O(alpha^(p-2)) for X in m, m_bar, m0, q, q_bar, q0,
    e_tm, e_idg, e_odg (``n_terms=1``: leading term only). Leading terms (derived; docs/derivations.md):
    m -> 1, m_bar -> min(kappa, rho),
    m0 -> min(kappa, rho)/rho, q -> 1 + sigma^2 min(kappa, rho)/(tau - 1),
    q_bar/alpha -> sigma^2 (1 - min(kappa, rho))/((1 + sigma^2)(tau - 1)),
    q0 -> 1 + sigma^2 kappa rho/((tau - 1)(kappa - rho)) (kappa > rho),
    q0/alpha -> (rho - kappa) sigma^2/(rho (tau - 1)(1 + sigma^2)) (kappa < rho).
    The next terms are in ``derive_large_alpha(case)[name].next``. Vectorized (broadcasts);
    raises ValueError for tau <= 1, kappa == rho, rho outside (0, 1], alpha, kappa <= 0, sigma < 0.
    Returns {name: ndarray}.
    """
    a = _real("alpha", alpha_value, lower=0.0)
    t_ = _real("tau", tau_value, lower=1.0)
    k = _real("kappa", kappa_value, lower=0.0)
    r = _real("rho", rho_value, lower=0.0, upper=1.0)
    s = _real("sigma", sigma_value, lower=0.0, lower_inclusive=True)
    if n_terms not in (1, 2):
        raise ValueError(f"n_terms must be 1 or 2 (got {n_terms!r})")
    a, t_, k, r, s = np.broadcast_arrays(a, t_, k, r, s)
    if np.any(k == r):
        raise ValueError("kappa must differ from rho (the expansion is singular at kappa = rho)")
    fns = _large_alpha_numeric()
    above = k > r
    out = {}
    for name in QUANTITIES:
        vals = []
        for case in (CASE_KAPPA_ABOVE, CASE_KAPPA_BELOW):
            p, lead, nxt = fns[case][name]
            with np.errstate(divide="ignore", invalid="ignore"):
                v = lead(t_, k, r, s) + (nxt(t_, k, r, s) / a if n_terms == 2 else 0.0)
                vals.append(np.broadcast_to(a**p * v, a.shape))
        out[name] = np.where(above, vals[0], vals[1])[()]
    return out


# ---------------------------------------------------------------------------------------------
# 2. tau -> infinity (any lam)

@lru_cache(maxsize=None)
def derive_large_tau() -> dict:
    """Limit tau -> infinity of the explicit solution at fixed nu, with the moments as free symbols.

    evaluate_explicit at u = 0 (gap tau - 1) with tau = 1 + T, T -> infinity: the noise parts carry
    E/tau and vanish, E -> sigma^2 + W + c A2. (For lam > 0, G(u) = 0 gives u ~ lam kappa/tau -> 0,
    so nu -> c = (1 + sigma^2)/alpha as well.) Returns {name: sympy limit} over E and QUANTITIES,
    in the symbols of the PoolMoments fields (g, dg, g_tilde, dg_tilde, A1, B1, A2, Mm, Q3, W, V, V_tilde).
    """
    names = tuple(PoolMoments.__dataclass_fields__)
    mo = PoolMoments(*sp.symbols(" ".join(names), positive=True))
    order, _ = evaluate_explicit(0, mo, alpha, 1 + T, kappa, rho, sigma, 0)
    exprs = {"E": order["E"], **_quantities(order, sigma, alpha)}
    return {k: sp.simplify(sp.limit(v, T, sp.oo)) for k, v in exprs.items()}


def large_tau_limit(alpha_value, kappa_value, rho_value, sigma_value) -> dict:
    r"""tau -> infinity limit (any fixed lam >= 0; the ridge drops out), tested at alpha_t = alpha, sigma_t = sigma.

    With c = (1 + sigma^2)/alpha and the pool moments at nu = c:
    E = sigma^2 + W + c A2, q = Q3, q_bar = A2, q0 = A2/rho, m = Mm, m_bar = A1, m0 = A1/rho,
    e_X = sigma^2 + 1 - 2 m_X + q_X + (1 + sigma^2) q_bar/alpha. Corrections are O(1/tau).
    Vectorized; ValueError for alpha, kappa <= 0, rho outside (0, 1], sigma < 0. Returns {name: array}.
    """
    a = _real("alpha", alpha_value, lower=0.0)
    k = _real("kappa", kappa_value, lower=0.0)
    r = _real("rho", rho_value, lower=0.0, upper=1.0)
    s = _real("sigma", sigma_value, lower=0.0, lower_inclusive=True)
    a, k, r, s = np.broadcast_arrays(a, k, r, s)
    c = (1 + s**2) / a
    mo = pool_moments(-c, k, r)
    order = {"E": s**2 + mo.W + c * mo.A2, "q": mo.Q3, "q_bar": mo.A2, "q0": mo.A2 / r,
             "m": mo.Mm, "m_bar": mo.A1, "m0": mo.A1 / r}
    out = {"E": order["E"], **_quantities(order, s, a)}
    return {key: np.asarray(v)[()] for key, v in out.items()}


# ---------------------------------------------------------------------------------------------
# 3. kappa -> infinity (a fresh task per prompt), lam = 0

@lru_cache(maxsize=None)
def derive_large_kappa():
    """kappa -> infinity limits of t = g~(-nu), of every stable moment, and the tau < 1 root u.

    t and the moments are stieltjes.derive_population_moments (t -> rho/(1 + rho nu), S -> (1/rho) P_A;
    the same limit that solve(kappa=inf) evaluates). At lam = 0, tau < 1 the root of u g(-c-u) = 1 - tau is the positive
    root of a quadratic in u (returned as ``u_roots``, both roots; the caller keeps the admissible one).
    Returns (moments: dict field -> expr in nu, rho; t_inf; u_roots: exprs in c, tau, rho).
    """
    from lowrank_icl.theory.forward.stieltjes import derive_population_moments

    pop = derive_population_moments()  # the one home of the kappa -> infinity moments
    to_here = {pop["nu"]: nu, pop["rho"]: rho}
    t_inf = pop["t"].subs(to_here)
    moments = {f: pop[f].subs(to_here) for f in PoolMoments.__dataclass_fields__}
    c_sym = sp.Symbol("c", positive=True)
    u = sp.Symbol("u", positive=True)
    g_at = moments["g"].subs(nu, c_sym + u)
    num = sp.numer(sp.together(u * g_at - (1 - tau)))
    u_roots = tuple(sp.solve(num, u))
    return moments, t_inf, u_roots


@lru_cache(maxsize=None)
def _large_kappa_numeric():
    moments, _t, u_roots = derive_large_kappa()
    c_sym = sp.Symbol("c", positive=True)
    mfn = {f: sp.lambdify((nu, rho), e, "numpy") for f, e in moments.items()}
    ufn = [sp.lambdify((c_sym, tau, rho), e, "numpy") for e in u_roots]
    return mfn, ufn


def large_kappa_limit(alpha_value, tau_value, rho_value, sigma_value) -> dict:
    r"""kappa -> infinity limit at lam = 0 (tested at alpha_t = alpha, sigma_t = sigma).

    S -> (1/rho) P_A: t = rho/(1 + rho nu), g = rho^2/(1 + rho nu) + (1 - rho)/nu, and the moments
    of the two-atom law (weight rho at 1/rho, 1 - rho at 0): A1 = rho/(1 + rho nu), etc.
    nu = c + u, c = (1 + sigma^2)/alpha; u = 0 for tau > 1, and for tau < 1 the positive root of
    u g(-c - u) = 1 - tau (a quadratic). Order parameters from saddle_point.evaluate_explicit.
    At fixed lam > 0 the penalty lam kappa diverges (trivial limit), so only lam = 0 is offered.
    Corrections are O(1/kappa). ValueError for tau == 1, tau, alpha <= 0, rho outside (0, 1], sigma < 0.
    """
    a = _real("alpha", alpha_value, lower=0.0)
    t_ = _real("tau", tau_value, lower=0.0)
    r = _real("rho", rho_value, lower=0.0, upper=1.0)
    s = _real("sigma", sigma_value, lower=0.0, lower_inclusive=True)
    a, t_, r, s = (np.array(v, dtype=float) for v in np.broadcast_arrays(a, t_, r, s))
    if np.any(t_ == 1):
        raise ValueError("tau must differ from 1 (interpolation threshold: the errors are +inf)")
    mfn, ufn = _large_kappa_numeric()
    c = (1 + s**2) / a
    with np.errstate(invalid="ignore"):
        roots = np.stack([np.broadcast_to(np.real(f(c, t_, r)), c.shape) for f in ufn])
    roots = np.where(np.isfinite(roots) & (roots > 0), roots, np.nan)
    u = np.where(t_ < 1, np.nanmax(np.where(np.isnan(roots), -np.inf, roots), axis=0), 0.0)
    nu_v = c + u
    with np.errstate(invalid="ignore", divide="ignore"):
        mo = PoolMoments(**{f: np.broadcast_to(fn(nu_v, r), c.shape).astype(float) for f, fn in mfn.items()})
    order, _ = evaluate_explicit(u, mo, a, t_, np.ones_like(a), r, s, np.zeros_like(a))
    return {key: np.asarray(v)[()] for key, v in _quantities(order, s, a).items()}


# ---------------------------------------------------------------------------------------------
# 4. sigma -> 0: d e_X / d sigma^2 at sigma = 0 (lam = 0, tau > 1)

@lru_cache(maxsize=None)
def derive_sigma2_slope() -> dict:
    """d e_X/d(sigma^2) at lam = 0, tau > 1 (u = 0, nu = c = (1 + S)/alpha, S = sigma^2, sigma_t = sigma).

    Every quantity is a function of S explicitly and of nu through t = g~(-nu) and nu itself
    (stable moments, explicit solution at u = 0). Chain rule: d/dS = d_S + (1/alpha)(d_nu - dgt d_t),
    with dt/dnu = -g~'(z) = -dgt = -rho t (t + kappa)/sd. Returns {name: expr in (t, nu, S, alpha,
    tau, kappa, rho)} for e_tm, e_idg, e_odg; evaluate at S = 0.
    """
    t_sym, S = sp.symbols("t S", positive=True)
    sg = sp.sqrt(S)
    mo = _symbolic_moments(t_sym, nu)
    order, _ = evaluate_explicit(0, mo, alpha, 1 + T, kappa, rho, sg, 0)
    quantities = _quantities(order, sg, alpha)
    dgt = mo.dg_tilde
    out = {}
    for name in ("e_tm", "e_idg", "e_odg"):
        e = quantities[name]
        d = sp.diff(e, S) + (sp.diff(e, nu) - dgt * sp.diff(e, t_sym)) / alpha
        out[name] = d.subs(T, tau - 1)
    return out


@lru_cache(maxsize=None)
def _sigma2_numeric():
    t_sym, S = sp.symbols("t S", positive=True)
    return {k: sp.lambdify((t_sym, nu, S, alpha, tau, kappa, rho), v, "numpy")
            for k, v in derive_sigma2_slope().items()}


def sigma2_slope(alpha_value, tau_value, kappa_value, rho_value) -> dict:
    r"""d e_X/d(sigma^2) at sigma = 0 (sigma_t = sigma), lam = 0, tau > 1, for X in tm, idg, odg.

    e_X(sigma) = e_X(0) + sigma^2 slope_X + O(sigma^4). Formula: chain rule of the explicit solution
    at u = 0 (:func:`derive_sigma2_slope`) evaluated at nu = 1/alpha, t = g~(-1/alpha). Vectorized;
    ValueError for tau <= 1, alpha, kappa <= 0, rho outside (0, 1]. Returns {"e_tm", "e_idg", "e_odg"}.
    """
    from lowrank_icl.theory.forward.stieltjes import pool_transforms
    a = _real("alpha", alpha_value, lower=0.0)
    t_ = _real("tau", tau_value, lower=1.0)
    k = _real("kappa", kappa_value, lower=0.0)
    r = _real("rho", rho_value, lower=0.0, upper=1.0)
    a, t_, k, r = np.broadcast_arrays(a, t_, k, r)
    nu_v = 1.0 / a
    tt = np.asarray(pool_transforms(-nu_v, k, r).g_tilde)
    return {key: np.asarray(f(tt, nu_v, 0.0 * a, a, t_, k, r))[()] for key, f in _sigma2_numeric().items()}


if __name__ == "__main__":  # regenerate the persisted large-alpha terms
    print(write_large_alpha_module())
