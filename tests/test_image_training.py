"""fit_images and `numpyro-hgf train`: bad input fails early, naming the argument."""

import jax
import jax.numpy as jnp
import pytest
from typer.testing import CliRunner

from numpyro_hgf.cli import app
from numpyro_hgf.train import fit_images

KEY = jax.random.key(0)


def test_fit_images_rejects_bad_input_before_training():
    images = jnp.zeros((16, 8, 8, 1))
    with pytest.raises(ValueError, match="model: expected one of 'flow_matching'"):
        fit_images("gan", images, key=KEY)
    with pytest.raises(
        ValueError, match="images: expected images whose height and width are multiples of 4"
    ):
        fit_images("oscillation", jnp.zeros((16, 6, 6, 1)), key=KEY, channels=(8, 16, 32))
    with pytest.raises(ValueError, match=r"images: expected images of shape \(n, H, W\)"):
        fit_images("oscillation", jnp.zeros((16, 64)), key=KEY)
    with pytest.raises(ValueError, match="images: expected finite values"):
        fit_images("oscillation", images.at[0, 0, 0, 0].set(jnp.nan), key=KEY)
    with pytest.raises(TypeError, match="key: expected a jax.random key, got None"):
        fit_images("oscillation", images)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "gan"], "expected one of fm, flow_matching"),
        (["--model", "oscillation", "--data", "cifar"], "expected one of digits, got 'cifar'"),
        (["--model", "oscillation", "--devices", "gpu"], "expected 'all' or a number"),
        (["--model", "oscillation", "--channels", "8,x"], "expected comma-separated integers"),
        (["--model", "oscillation", "--learning-rate", "-1"], "learning_rate: expected a positive"),
        (
            ["--model", "oscillation", "--learning-rate", "nan"],
            "learning_rate: expected a positive",
        ),
    ],
)
def test_train_command_rejects_bad_options(args, message):
    result = CliRunner().invoke(app, ["train", *args, "--steps", "1"])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
