"""Orbax checkpoints of the trainer: SIGKILL and resume, non-finite losses, wrong directories.

The resume check kills a training subprocess with SIGKILL while it is between checkpoints,
resumes in this process from the newest finished checkpoint with the same arguments, and
compares the final params (and EMA, optimizer state) with an uninterrupted run: they must be
equal, because the key, the optimizer state (Adam moments, the schedule's step count) and the
EMA all live in the checkpointed state.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from numpyro_hgf.train import NonFiniteLossError, Trainer
from numpyro_hgf.train.checkpoint import TrainCheckpointer, state_fingerprint

# the model both processes build: flow matching of a small TimeMLP on two moons, Adam with a
# cosine schedule, EMA and gradient clipping (every piece of state a resume must restore)
MODEL = textwrap.dedent(
    """
    import time
    import jax, jax.numpy as jnp, optax
    import numpyro_hgf as nh
    from numpyro_hgf.paths import FlowMatchingPath
    from numpyro_hgf.train import Trainer, velocity_matching_loss

    STEPS = 120
    DATA = nh.datasets.toy2d("two_moons", 512, jax.random.key(0), standardize=True)
    NET = nh.nn.TimeMLP(hidden=(16, 16))
    PARAMS = NET.init(jax.random.key(1), DATA[:1], jnp.zeros(()))["params"]
    PATH = FlowMatchingPath()

    def loss(p, batch, key):
        return velocity_matching_loss(NET, p, PATH, batch, key)

    def make_trainer(checkpoint_dir, pause=0.0):
        callback = (lambda state: time.sleep(pause)) if pause else None
        return Trainer(loss, optax.adam(optax.cosine_decay_schedule(1e-2, STEPS)),
                       batch_size=32, steps_per_dispatch=10, ema_decay=0.9, clip_norm=1.0,
                       progress=False, checkpoint_dir=checkpoint_dir,
                       checkpoint_every=10 if checkpoint_dir else None,
                       callback=callback, callback_every=10)
    """
)

CHILD = MODEL + textwrap.dedent(
    """
    import sys
    make_trainer(sys.argv[1], pause=0.4).fit(PARAMS, DATA, STEPS, jax.random.key(2))
    print("finished")
    """
)


def _finished_steps(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


@pytest.fixture(scope="module")
def model():
    namespace: dict = {}
    exec(MODEL, namespace)  # noqa: S102 - the same definition the child process runs
    return namespace


def test_sigkill_then_resume_equals_uninterrupted_run(model, tmp_path):
    ckpt = tmp_path / "killed"
    env = dict(os.environ, NUMPYRO_HGF_PROGRESS="0", JAX_PLATFORMS="cpu")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ckpt)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and max(_finished_steps(ckpt), default=0) < 30:
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            time.sleep(0.02)
        assert child.poll() is None, "the child finished before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    killed_at = max(_finished_steps(ckpt))
    assert 30 <= killed_at < model["STEPS"]
    trainer = model["make_trainer"](ckpt)
    template = trainer.init(model["PARAMS"], jax.random.key(2))
    fingerprint = state_fingerprint(
        template, None, training=trainer._training_config(model["DATA"])
    )
    at_kill = TrainCheckpointer(ckpt, fingerprint).restore(template)
    assert int(at_kill.step) == killed_at

    # one trainer (one compilation) for the three runs: only the directory changes
    resumed = trainer.fit(model["PARAMS"], model["DATA"], model["STEPS"], jax.random.key(2))
    trainer.checkpoint_dir = tmp_path / "straight"
    straight = trainer.fit(model["PARAMS"], model["DATA"], model["STEPS"], jax.random.key(2))
    assert int(resumed.state.step) == int(straight.state.step) == model["STEPS"]
    # the resumed call ran only the steps after the newest finished checkpoint
    assert resumed.history.shape == (model["STEPS"] - killed_at,)
    np.testing.assert_allclose(resumed.history, straight.history[killed_at:], rtol=1e-6)
    for got, want in zip(
        jax.tree.leaves((resumed.params, resumed.state)),
        jax.tree.leaves((straight.params, straight.state)),
        strict=True,
    ):
        if jnp.issubdtype(want.dtype, jax.dtypes.prng_key):
            got, want = jax.random.key_data(got), jax.random.key_data(want)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-7)
    # negative control: the killed step's params alone, trained on with a fresh optimizer
    # state and EMA, do not give the same run -- the checkpoint must carry the whole state
    trainer.checkpoint_dir = tmp_path / "fresh"
    fresh = trainer.fit(
        at_kill.params, model["DATA"], model["STEPS"] - killed_at, jax.random.key(2)
    )
    assert not np.allclose(
        jax.tree.leaves(fresh.params)[0], jax.tree.leaves(straight.params)[0], atol=1e-4
    )


def _diverging_loss(params, batch, key):
    # finite while s <= 3; sgd(0.01) gives s_k = 10 - 10 * 0.98^k, so the loss of step 18
    # (s_18 = 3.04) is the first non-finite one and s_17 = 2.91 the last finite one
    return jnp.where(params["s"] > 3.0, jnp.nan, (params["s"] - 10.0) ** 2)


def test_non_finite_loss_stops_and_keeps_the_last_finite_checkpoint(tmp_path):
    trainer = Trainer(
        _diverging_loss,
        optax.sgd(0.01),
        batch_size=1,
        steps_per_dispatch=7,
        progress=False,
        checkpoint_dir=tmp_path,
        checkpoint_every=5,
    )
    with pytest.raises(NonFiniteLossError, match="step 18") as info:
        trainer.fit({"s": jnp.array(0.0)}, jnp.zeros((4, 1)), 100, jax.random.key(0))
    err = info.value
    assert str(tmp_path) in str(err) and "last state whose loss was finite (step 17)" in str(err)
    assert err.checkpoint_step == 17 and _finished_steps(tmp_path) == [10, 15, 17]
    template = trainer.init({"s": jnp.array(0.0)}, jax.random.key(0))
    kept = trainer_checkpointer(trainer, tmp_path, template).restore(template)
    assert int(kept.step) == 17
    np.testing.assert_allclose(kept.params["s"], err.last_good_state.params["s"], rtol=0)
    # closed form: s_k = 10 - 10 (1 - 2 * 0.01)^k, and its loss is finite
    np.testing.assert_allclose(kept.params["s"], 10 - 10 * 0.98**17, rtol=1e-5)
    assert np.isfinite(_diverging_loss(kept.params, None, None))


def test_the_diverged_periodic_checkpoint_is_discarded(tmp_path):
    # checkpoint_every=6 saves s_18 (whose loss diverges next) before the loss of step 18 is
    # evaluated in the next dispatch; the failure must drop it and keep s_17
    trainer = Trainer(
        _diverging_loss,
        optax.sgd(0.01),
        batch_size=1,
        steps_per_dispatch=6,
        progress=False,
        checkpoint_dir=tmp_path,
        checkpoint_every=6,
    )
    with pytest.raises(NonFiniteLossError, match="removed the newer checkpoints \\[18\\]"):
        trainer.fit({"s": jnp.array(0.0)}, jnp.zeros((4, 1)), 100, jax.random.key(0))
    assert _finished_steps(tmp_path) == [6, 12, 17]


def trainer_checkpointer(trainer, directory, template):
    return TrainCheckpointer(
        directory,
        state_fingerprint(template, None, training=trainer._training_config(jnp.zeros((4, 1)))),
    )


def _oscillating_loss(params, batch, key):
    # (s - 2)^2, undefined above s = 3: sgd(1.2) multiplies s - 2 by -1.4 per step, so from
    # s = 2.1 the loss of step 8 (s = 3.48) is the first non-finite one; sgd(0.1) converges
    return jnp.where(params["s"] > 3.0, jnp.nan, (params["s"] - 2.0) ** 2)


def test_rerun_with_a_lower_learning_rate_resumes_the_last_finite_state(tmp_path):
    def trainer(learning_rate):
        return Trainer(
            _oscillating_loss,
            optax.sgd(learning_rate),
            batch_size=1,
            steps_per_dispatch=5,
            progress=False,
            checkpoint_dir=tmp_path,
        )

    params, data = {"s": jnp.array(2.1)}, jnp.zeros((4, 1))
    with pytest.raises(NonFiniteLossError, match="at step 8") as info:
        trainer(1.2).fit(params, data, 40, jax.random.key(0))
    assert info.value.checkpoint_step == 7
    with pytest.raises(NonFiniteLossError, match="at step 8"):  # same rate: same failure
        trainer(1.2).fit(params, data, 40, jax.random.key(0))
    result = trainer(0.1).fit(params, data, 40, jax.random.key(0))
    assert int(result.state.step) == 40 and np.all(np.isfinite(result.history))
    s7 = 2.0 + 0.1 * (-1.4) ** 7
    np.testing.assert_allclose(result.params["s"], 2.0 + (s7 - 2.0) * 0.8**33, atol=1e-5)


def test_non_finite_first_loss_says_there_is_no_good_state(tmp_path):
    loss = lambda p, batch, key: jnp.sum(p["w"]) * jnp.nan  # noqa: E731
    trainer = Trainer(loss, 0.1, batch_size=1, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(NonFiniteLossError, match="no step had a finite loss") as info:
        trainer.fit({"w": jnp.zeros(2)}, jnp.zeros((4, 1)), 5, jax.random.key(0))
    assert info.value.last_good_state is None and "step -1" not in str(info.value)
    assert _finished_steps(tmp_path) == []


def test_unreadable_newest_checkpoint_falls_back_with_a_warning(tmp_path):
    import shutil

    loss = lambda p, batch, key: jnp.sum((p["w"] - 1.0) ** 2)  # noqa: E731
    data = jnp.zeros((4, 1))

    def trainer():
        return Trainer(
            loss,
            0.1,
            batch_size=2,
            steps_per_dispatch=2,
            progress=False,
            checkpoint_dir=tmp_path,
            checkpoint_every=2,
        )

    trainer().fit({"w": jnp.zeros(3)}, data, 6, jax.random.key(0))
    assert _finished_steps(tmp_path) == [2, 4, 6]
    for child in (tmp_path / "6").iterdir():  # empty the newest step folder
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    with pytest.warns(RuntimeWarning, match="checkpoint of step 6 .* cannot be read"):
        result = trainer().fit({"w": jnp.zeros(3)}, data, 6, jax.random.key(0))
    assert int(result.state.step) == 6 and len(result.history) == 2  # resumed at step 4
    for step in (2, 4, 6):
        shutil.rmtree(tmp_path / str(step))
        (tmp_path / str(step)).mkdir()
    with pytest.raises(ValueError, match="checkpoint_dir: no checkpoint in .* can be read"):
        with pytest.warns(RuntimeWarning):
            trainer().fit({"w": jnp.zeros(3)}, data, 6, jax.random.key(0))


def test_checkpoint_directory_of_another_model_is_refused(tmp_path):
    loss = lambda p, batch, key: jnp.sum((p["w"] - 1.0) ** 2)
    data = jnp.zeros((4, 1))
    Trainer(loss, 0.1, batch_size=2, progress=False, checkpoint_dir=tmp_path).fit(
        {"w": jnp.zeros(3)}, data, 3, jax.random.key(0)
    )
    other = Trainer(loss, 0.1, batch_size=2, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"checkpoint_dir: .* different run \(params\['w'\]"):
        other.fit({"w": jnp.zeros(4)}, data, 3, jax.random.key(0))
    described = Trainer(
        loss,
        0.1,
        batch_size=2,
        progress=False,
        checkpoint_dir=tmp_path,
        checkpoint_description={"network": "UNet(8, 16)"},
    )
    with pytest.raises(ValueError, match="checkpoint_dir: .* different run \\(description"):
        described.fit({"w": jnp.zeros(3)}, data, 3, jax.random.key(0))
    other_batch = Trainer(loss, 0.1, batch_size=4, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"different run \(training\['batch_size'\]: expected 2"):
        other_batch.fit({"w": jnp.zeros(3)}, data, 3, jax.random.key(0))
    with pytest.raises(ValueError, match="to start afresh, pass a new checkpoint_dir"):
        Trainer(loss, 0.1, batch_size=2, progress=False, checkpoint_dir=tmp_path).fit(
            {"w": jnp.zeros(3)}, jnp.zeros((5, 1)), 3, jax.random.key(0)
        )
    stray = tmp_path.parent / "not_a_checkpoint"
    stray.mkdir()
    (stray / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="checkpoint_dir: expected an empty directory"):
        Trainer(loss, 0.1, batch_size=2, progress=False, checkpoint_dir=stray).fit(
            {"w": jnp.zeros(3)}, data, 3, jax.random.key(0)
        )
    with pytest.raises(ValueError, match="checkpoint_every: checkpoints need a checkpoint_dir"):
        Trainer(loss, 0.1, checkpoint_every=5)
