"""StyleMeUp meta-gradients in float64 against central finite differences.

The regulariser P and the FT parameters appear only in the inner (meta-train) loss, so they
receive a gradient only through the inner SGD step: second order must match finite differences,
first order must give exactly zero (the official code's defect).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from sbirjax.methods import meta, stylemeup
from tests import helpers


def setup(inner_steps=1, first_order=False, regulariser=True, conv_impl="xla", task_chunk=0,
          remat=False, model_first_order=False, unadapted_weight=0.0, parts=False,
          unroll_chunks=False, hessian="forward"):
    module = stylemeup.StyleMeUp(image_size=8, widths=(2, 3), hidden=4, latent=3, dropout=0.0,
                                 ft=True, conv_impl=conv_impl)
    params = stylemeup.init(module, jax.random.key(0), (8, 8, 3))
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    rng = np.random.default_rng(0)
    tasks = {"sketches": rng.uniform(-1, 1, (2, 3, 8, 8, 3)),
             "photo": rng.uniform(-1, 1, (2, 8, 8, 3)),
             "negative": rng.uniform(-1, 1, (2, 8, 8, 3))}
    tasks = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tasks)
    config = helpers.stylemeup_config(
        meta={"inner_lr": 0.5, "inner_steps": inner_steps, "first_order": first_order,
              "regulariser": regulariser, "task_chunk": task_chunk, "remat": remat,
              "unroll_chunks": unroll_chunks, "model_first_order": model_first_order,
              "unadapted_weight": unadapted_weight, "hessian": hessian},
        loss={"margin": 0.2, "triplet_eps": 0.0,
              "weights": {"kl": 1.0, "cross_style": 1.0, "cross_domain": 1.0, "self_recon": 0.0,
                          "triplet_inv": 1.0, "triplet_f": 1.0}})

    def objective(p):
        return stylemeup.meta_objective(module, p, tasks, jax.random.key(1), config)[0]

    if parts:
        return params, jax.jit(objective), (module, tasks, config)
    return params, jax.jit(objective)  # one compilation serves every perturbation


def leaves(tree, pattern):
    flat = traverse_util.flatten_dict(tree, sep="/")
    return {k: v for k, v in flat.items() if pattern(k)}


def is_ft(path):
    return "/ft" in f"/{path}"


def perturb(params, path, delta):
    flat = traverse_util.flatten_dict(params, sep="/")
    flat = dict(flat, **{path: flat[path] + delta})
    return traverse_util.unflatten_dict(flat, sep="/")


@pytest.mark.parametrize("inner_steps", [1, 2])
@pytest.mark.slow
def test_second_order_meta_gradient_matches_finite_differences(inner_steps):
    with jax.enable_x64(True):
        params, f = setup(inner_steps=inner_steps)
        grads = jax.grad(f)(params)
        targets = {**leaves(grads, lambda k: k == "reg_P"), **leaves(grads, is_ft)}
        assert set(targets) >= {"reg_P", "encoder/ft1/theta_gamma", "encoder/ft1/theta_beta"}
        rng = np.random.default_rng(1)
        eps = 1e-6
        for path, g in targets.items():
            assert np.abs(np.asarray(g)).max() > 0, f"{path} gets no meta-gradient"
            v = rng.standard_normal(g.shape)  # a random direction in this parameter block
            fd = ((f(perturb(params, path, eps * v)) - f(perturb(params, path, -eps * v)))
                  / (2 * eps))
            analytic = float(jnp.sum(g * v))
            rel = abs(fd - analytic) / max(abs(fd), abs(analytic))
            print(f"{path}: finite difference {fd:.10g}, analytic {analytic:.10g}, "
                  f"rel err {rel:.2e}")
            assert rel < 1e-3, (path, fd, analytic, rel)


@pytest.mark.slow
def test_first_order_gives_zero_exactly_where_the_math_says():
    with jax.enable_x64(True):
        params, f = setup(first_order=True)
        grads = jax.grad(f)(params)
        for path, g in {**leaves(grads, lambda k: k == "reg_P"), **leaves(grads, is_ft)}.items():
            assert np.all(np.asarray(g) == 0.0), f"{path} should get no first-order gradient"
        # ...while the model itself still learns.
        model = leaves(grads, lambda k: k != "reg_P" and not is_ft(k))
        assert all(np.abs(np.asarray(g)).max() > 0 for k, g in model.items() if "kernel" in k)


@pytest.mark.slow
def test_model_first_order_is_first_order_for_the_model_and_exact_for_the_rest():
    """One inner step: the model's meta-gradient equals FOMAML's, the regulariser's and the FT
    layers' equal full second order's (so they still match finite differences)."""
    with jax.enable_x64(True):
        params, f_second = setup()
        _, f_first = setup(first_order=True)
        _, f_split = setup(model_first_order=True)
        second, first, split = (jax.grad(f)(params) for f in (f_second, f_first, f_split))
        meta_leaf = lambda k: k == "reg_P" or is_ft(k)
        for path, g in leaves(split, meta_leaf).items():
            np.testing.assert_allclose(g, leaves(second, meta_leaf)[path], rtol=1e-10, atol=1e-14)
            assert np.abs(np.asarray(g)).max() > 0, path
        model_leaf = lambda k: not meta_leaf(k)
        differs = False
        for path, g in leaves(split, model_leaf).items():
            np.testing.assert_allclose(g, leaves(first, model_leaf)[path], rtol=1e-10, atol=1e-14)
            differs |= not np.allclose(g, leaves(second, model_leaf)[path], rtol=1e-6)
        assert differs, "the model's gradient should differ from full second order"


@pytest.mark.slow
def test_inner_step_updates_only_the_model():
    with jax.enable_x64(True):
        params, _ = setup()
        mask = stylemeup.inner_mask(params)
        adapted, _ = meta.sgd_adapt(params,
                                    lambda p, k: (sum(jnp.sum(x) for x in jax.tree.leaves(p)), {}),
                                    lr=0.1, steps=1, mask=mask, first_order=False)
        changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), adapted, params)
        flat = traverse_util.flatten_dict(changed, sep="/")
        assert not flat["reg_P"] and not any(v for k, v in flat.items() if is_ft(k))
        assert flat["inv/kernel"] and flat["decoder/fc/kernel"]


def test_inner_lr_scale_sets_each_leafs_step_and_zero_freezes_it():
    params = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(3.0), "c": jnp.array(4.0)}
    mask = {"a": True, "b": True, "c": False}
    # loss = sum of squares: gradient 2p, so one step of lr 0.1 at scale s is p (1 - 0.2 s)
    loss = lambda p, k: (sum(jnp.sum(x ** 2) for x in jax.tree.leaves(p)), {})
    adapted, _ = meta.sgd_adapt(params, loss, lr=0.1, steps=1, mask=mask, first_order=False,
                                lr_scale={"a": 0.5, "b": 0.0, "c": 1.0})
    np.testing.assert_allclose(adapted["a"], [0.9, 1.8], rtol=1e-6)
    assert float(adapted["b"]) == 3.0 and float(adapted["c"]) == 4.0  # scale 0; not masked
    plain, _ = meta.sgd_adapt(params, loss, lr=0.1, steps=1, mask=mask, first_order=False)
    np.testing.assert_allclose(plain["a"], [0.8, 1.6], rtol=1e-6)
    np.testing.assert_allclose(plain["b"], 2.4, rtol=1e-6)


# 5 tasks: chunks of 2 and 3 leave a remainder; unrolled, a chunk of 1 skips the vmap
@pytest.mark.parametrize("chunk,unroll", [(1, False), (2, False), (3, False), (1, True),
                                          (2, True)])
def test_accumulated_chunks_give_the_mean_and_its_gradient(chunk, unroll):
    """meta.accumulated (each chunk's gradient taken inside the loop, in a scan or unrolled)
    against the plain mean over vmapped tasks: the same value, metrics and gradient, under jit
    too."""
    def one(p, task, key):
        noise = jax.random.normal(key, ())  # per-task randomness must pair with its task
        loss = jnp.sum(jnp.sin(p["w"] * task) ** 2) + p["b"] ** 2 * (1.0 + noise)
        return loss, {"noise": noise, "w_mean": jnp.mean(p["w"] * task)}

    params = {"w": jnp.array([0.3, -1.2, 2.0]), "b": jnp.array(0.7)}
    tasks = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)))
    keys = jax.random.split(jax.random.key(0), 5)

    def reference(p):
        losses, aux = jax.vmap(one, in_axes=(None, 0, 0))(p, tasks, keys)
        return jnp.mean(losses), jax.tree.map(jnp.mean, aux)

    chunked = meta.accumulated(one, chunk, unroll)
    # eagerly too, once: an eager run compiles op by op (a few seconds a case)
    for f in (chunked, jax.jit(chunked)) if (chunk, unroll) == (2, False) else (jax.jit(chunked),):
        (value, aux), grads = jax.value_and_grad(lambda p: f(p, tasks, keys), has_aux=True)(
            params)
        (want_value, want_aux), want = jax.value_and_grad(reference, has_aux=True)(params)
        np.testing.assert_allclose(value, want_value, rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                     (aux, grads), (want_aux, want))
        # without differentiation it computes the same value
        np.testing.assert_allclose(f(params, tasks, keys)[0], want_value, rtol=1e-6)
    # a cotangent other than 1 scales the gradient
    scaled = jax.jit(jax.grad(lambda p: 3.0 * chunked(p, tasks, keys)[0]))(params)
    np.testing.assert_allclose(scaled["w"], 3.0 * want["w"], rtol=1e-6)


@pytest.mark.slow
def test_matmul_convolutions_chunks_and_remat_give_the_same_meta_gradient():
    """The fast path (patches @ kernel, tasks vmapped) and the low-memory paths (tasks one at a
    time, each task's gradient taken in the loop; with and without remat) compute the same
    function and meta-gradient."""
    with jax.enable_x64(True):
        params, f_ref = setup()
        want_value, want = jax.value_and_grad(f_ref)(params)
        for kw in ({"conv_impl": "matmul"},
                   {"conv_impl": "matmul", "task_chunk": 1},
                   {"conv_impl": "matmul", "task_chunk": 1, "remat": True}):
            _, f = setup(**kw)
            value, grads = jax.value_and_grad(f)(params)
            np.testing.assert_allclose(value, want_value, rtol=1e-10)
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-12),
                         grads, want)


@pytest.mark.slow
def test_lax_convolutions_with_the_tasks_unrolled_give_the_same_meta_gradient():
    """meta.unroll_chunks (the tasks as straight-line code, a chunk of one without the vmap),
    with lax convolutions: the same second-order function and meta-gradient as all tasks
    vmapped."""
    with jax.enable_x64(True):
        params, f_ref = setup()
        want_value, want = jax.value_and_grad(f_ref)(params)
        _, f = setup(task_chunk=1, unroll_chunks=True)
        value, grads = jax.value_and_grad(f)(params)
        np.testing.assert_allclose(value, want_value, rtol=1e-10)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-12),
                     grads, want)


def toy_meta_problem():
    """A small inner/outer pair with leaves the inner step adapts ('w'; 'z', whose inner gradient
    is the same for every task; 'q' at scale 0) and one only the inner loss uses ('r', like the
    regulariser), with per-task randomness in the inner loss; 5 tasks."""
    def inner(p, task, key):
        noise = jax.random.normal(key, p["w"].shape)
        loss = (jnp.sum(p["r"] * p["w"] ** 2) + jnp.sum(jnp.sin(p["w"] * task["x"] + noise))
                + jnp.sum(p["r"] ** 2 * p["w"]) + jnp.sum(p["z"] * p["w"])
                + jnp.sum(p["q"] * p["w"]))
        return loss, {"w_sum": jnp.sum(p["w"])}

    def outer(p, task, key):
        return (jnp.sum(jnp.cos(p["w"] * task["y"])) + jnp.sum(p["z"] ** 2 * task["y"])
                + jnp.sum(p["q"] ** 2)), {}

    rng = np.random.default_rng(0)
    params = {k: jnp.asarray(rng.standard_normal(4)) for k in ("w", "r", "z", "q")}
    tasks = {k: jnp.asarray(rng.standard_normal((5, 4))) for k in ("x", "y")}
    return inner, outer, params, tasks


@pytest.mark.parametrize("kw", [
    {"steps": 3}, {"steps": 2, "model_first_order": True, "remat": True},
    pytest.param({"steps": 2, "remat": True, "task_chunk": 2}, marks=pytest.mark.slow),
    pytest.param({"steps": 2, "task_chunk": 1, "unroll_chunks": True, "model_first_order": True},
                 marks=pytest.mark.slow),
    pytest.param({"steps": 2, "update": "tseng", "unadapted_weight": 0.5},
                 marks=pytest.mark.slow)])
def test_forward_over_reverse_hessian_gives_the_reverse_meta_gradient(kw):
    """meta.hessian='forward' (Hessian-vector products in each inner step's VJP, from the kept
    linearisation or, with remat, recomputed) computes the same value, metrics and
    meta-gradient as differentiating through the inner gradient, for every leaf: adapted (with
    an inner gradient that varies over the vmapped tasks, and one that does not), adapted at
    scale 0, and only in the inner loss."""
    with jax.enable_x64(True):
        inner, outer, params, tasks = toy_meta_problem()
        assert params["w"].dtype == jnp.float64
        common = dict(inner_loss=inner, outer_loss=outer, lr=0.3, first_order=False,
                      mask={"w": True, "r": False, "z": True, "q": True},
                      lr_scale={"w": 1.0, "r": 1.0, "z": 0.5, "q": 0.0}, **kw)
        out = {h: jax.jit(jax.value_and_grad(lambda p, h=h: meta.maml_loss(
            p, tasks, jax.random.key(0), hessian=h, **common), has_aux=True))(params)
            for h in meta.HESSIANS}
    ((want, want_aux), want_grad), ((value, aux), grad) = out["reverse"], out["forward"]
    np.testing.assert_allclose(value, want, rtol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13),
                 (aux, grad), (want_aux, want_grad))
    if not kw.get("model_first_order") and kw.get("update") != "tseng":
        assert np.abs(np.asarray(grad["r"])).max() > 1e-3  # a second-order-only leaf, non-zero


@pytest.mark.slow
def test_forward_over_reverse_hessian_on_stylemeup_two_inner_steps():
    """StyleMeUp in float64, two inner steps: meta.hessian='reverse' gives the meta-gradient of
    'forward' (the default, checked against finite differences above) on every leaf."""
    with jax.enable_x64(True):
        params, f_ref = setup(inner_steps=2, hessian="reverse")
        _, f = setup(inner_steps=2)
        (want_value, want), (value, grads) = (jax.value_and_grad(g)(params) for g in (f_ref, f))
        np.testing.assert_allclose(value, want_value, rtol=1e-12)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10),
                     grads, want)


@pytest.mark.slow
def test_unadapted_weight_adds_the_outer_loss_of_the_model_as_it_is():
    """meta.unadapted_weight = w adds w * outer_loss(params) per task (the model before any inner
    step): the objective and the model's gradient grow by exactly that; the regulariser and FT
    layers, absent from the outer loss, keep their meta-gradient unchanged."""
    w = 0.5
    with jax.enable_x64(True):
        params, f0 = setup()
        _, f1, (module, tasks, config) = setup(unadapted_weight=w, parts=True)
        _, outer = stylemeup.inner_and_outer(module, config)

        def base(p):  # the same per-task keys meta.maml_loss draws
            keys = jax.random.split(jax.random.key(1), 2)
            losses = [outer(p, jax.tree.map(lambda a: a[i], tasks),
                            jax.random.fold_in(jax.random.split(keys[i])[1], 1))[0]
                      for i in range(2)]
            return jnp.mean(jnp.stack(losses))

        assert float(f1(params)) == pytest.approx(float(f0(params)) + w * float(base(params)),
                                                  rel=1e-12)
        g0, g1, gb = (traverse_util.flatten_dict(jax.grad(f)(params), sep="/")
                      for f in (f0, f1, base))
        for path in g0:
            expected = g0[path] + (0.0 if path == "reg_P" or is_ft(path) else w * gb[path])
            np.testing.assert_allclose(g1[path], expected, rtol=1e-9, atol=1e-12, err_msg=path)
        assert any(np.abs(gb[k]).max() > 0 for k in gb if k != "reg_P" and not is_ft(k))


def test_a_term_of_weight_zero_is_skipped_and_changes_no_other_value(monkeypatch):
    """self_recon at weight 0 is neither decoded nor logged; with dropout and FT active, every other
    term is the same as when it is computed (the kept decodes' dropout masks are unchanged), and
    weight 1 adds exactly its value to the total."""
    decoded, decode = [], stylemeup.StyleMeUp.decode

    def counting(self, z, **kwargs):
        decoded[-1].append(z.shape[0])
        return decode(self, z, **kwargs)

    module = stylemeup.StyleMeUp(image_size=8, widths=(2, 3), hidden=4, latent=3, dropout=0.5,
                                 ft=True)
    params = jax.jit(lambda r: stylemeup.init(module, r, (8, 8, 3)))(jax.random.key(0))
    monkeypatch.setattr(stylemeup.StyleMeUp, "decode", counting)
    rng = np.random.default_rng(0)
    task = {"sketches": rng.integers(0, 256, (3, 8, 8, 3), np.uint8),
            "photo": rng.integers(0, 256, (8, 8, 3), np.uint8),
            "negative": rng.integers(0, 256, (8, 8, 3), np.uint8)}
    weights = {"kl": 1.0, "cross_style": 1.0, "cross_domain": 1.0, "self_recon": 0.0,
               "triplet_inv": 1.0, "triplet_f": 1.0}
    out = {}
    for w in (0.0, 1.0):
        decoded.append([])  # filled while tracing: jit, since eager runs compile op by op
        out[w] = jax.jit(lambda p, t, r, w=w: stylemeup.task_losses(
            module, p, t, r, dict(weights, self_recon=w), 0.2, sketch_slots=(0, 1),
            ft_active=True))(params, task, jax.random.key(3))
    (total0, terms0), (total1, terms1) = out[0.0], out[1.0]
    assert "self_recon" not in terms0 and float(terms1["self_recon"]) > 0
    assert decoded == [[5], [5, 1]]  # five codes; the negative only for the weighted term
    for k, v in terms0.items():
        assert float(v) == float(terms1[k]), k
    np.testing.assert_allclose(float(total1), float(total0) + float(terms1["self_recon"]),
                               rtol=1e-6)
