"""Per-image sidecar: the reader (every malformed file is one line), pairing across cells, the paired
robustness draws, and attaching a sidecar to a table (a sidecar of another run is an error)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from gameplay.images import ImageData, read_image_data, sidecar_path
from gameplay.robustness import robustness, table_draws
from gameplay.synthetic import synthetic_payoff_table
from gameplay.table import payoff_table_from_frame, read_payoff_csv
from payoffs.errors import DefdropError

N_IMAGES, N_TEST = 10, 40


def keyed_table(seed: int = 3) -> pd.DataFrame:
    """A synthetic table with cell keys and one accuracy key per defender."""
    df = synthetic_payoff_table(5, 3, seed=seed)
    df["accuracy_key"] = "acc-" + df["defender"]
    return df


def image_data_for(df: pd.DataFrame, spread: float = 0.1) -> ImageData:
    """Per-image values averaging exactly to the table: each cell's ASR +- a spread on alternate images, each
    accuracy constant over the test split."""
    signs = np.where(np.arange(N_IMAGES) % 2 == 0, 1.0, -1.0)
    asr = df["asr"].to_numpy(float)[:, None]
    delta = np.minimum(np.minimum(asr, 1 - asr), spread)
    acc = df.drop_duplicates("accuracy_key")
    return ImageData.from_arrays(
        np.array(df["key"]), np.tile(np.arange(N_IMAGES) * 3, (len(df), 1)), asr + delta * signs,
        np.array(acc["accuracy_key"]), np.repeat(acc["clean_accuracy"].to_numpy(float)[:, None], N_TEST, axis=1))


def save(path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def arrays_of(images: ImageData) -> dict[str, np.ndarray]:
    return dict(np.load(io.BytesIO(images.to_bytes()), allow_pickle=False))


def test_sidecar_round_trip_and_path(tmp_path) -> None:
    images = image_data_for(keyed_table())
    path = tmp_path / "x.images.npz"
    path.write_bytes(images.to_bytes())
    back = read_image_data(path)
    assert back.cell_key == images.cell_key and np.array_equal(back.cell_asr, images.cell_asr)
    assert sidecar_path(tmp_path / "payoff.csv") == tmp_path / "payoff.images.npz"


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("cell_asr"), "missing array(s) cell_asr"),
    (lambda a: a.update(cell_asr=a["cell_asr"][:, :-1]), "cell_asr has shape"),
    (lambda a: a.update(cell_image=a["cell_image"].astype(float)), "expected integers"),
    (lambda a: a.update(cell_key=np.arange(len(a["cell_key"]))), "expected strings"),
    (lambda a: a.update(cell_key=np.array(["k"] * len(a["cell_key"]))), "holds 'k' twice"),
    (lambda a: a["cell_asr"].__setitem__((0, 0), np.nan), "outside [0, 1]"),
    (lambda a: a["accuracy_correct"].__setitem__((0, 0), 1.5), "outside [0, 1]"),
    (lambda a: a["cell_image"].__setitem__((0, 0), N_TEST + 5), "accuracy_correct covers"),
    (lambda a: a["cell_image"].__setitem__((0, 0), -1), "negative index"),
    (lambda a: a["cell_image"].__setitem__((0, 1), a["cell_image"][0, 0]), "lists a test image twice"),
    (lambda a: a.update(accuracy_correct=a["accuracy_correct"][0]), "accuracy_correct has shape"),
    (lambda a: a.update(cell_key=np.array([""] + list(a["cell_key"][1:]))), "empty key"),
])
def test_malformed_sidecars_are_one_line_errors(tmp_path, change, message) -> None:
    arrays = arrays_of(image_data_for(keyed_table()))
    change(arrays)
    path = tmp_path / "bad.images.npz"
    save(path, **arrays)
    with pytest.raises(DefdropError) as info:
        read_image_data(path)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04garbage"])
def test_unreadable_sidecars_are_one_line_errors(tmp_path, content) -> None:
    path = tmp_path / "bad.images.npz"
    path.write_bytes(content)
    with pytest.raises(DefdropError, match="not a readable .npz") as info:
        read_image_data(path)
    assert "\n" not in str(info.value)


def test_pickles_and_single_arrays_are_refused(tmp_path) -> None:
    arrays = arrays_of(image_data_for(keyed_table()))
    arrays["cell_key"] = np.array(list(arrays["cell_key"]), dtype=object)
    path = tmp_path / "pickled.images.npz"
    save(path, **arrays)
    with pytest.raises(DefdropError, match="not a readable .npz without pickles"):
        read_image_data(path)
    single = tmp_path / "single.images.npz"
    np.save(single.with_suffix(".npy"), np.zeros(3))
    single.write_bytes(single.with_suffix(".npy").read_bytes())
    with pytest.raises(DefdropError, match="single array"):
        read_image_data(single)
    with pytest.raises(DefdropError, match="does not exist"):
        read_image_data(tmp_path / "missing.images.npz")


def test_identical_cells_resample_to_identical_values() -> None:
    """Images are drawn once per replicate for every cell: two cells with the same per-image values are equal
    in every draw (resampled independently they would not be), and the draws do vary."""
    values = np.random.default_rng(1).uniform(0, 1, (1, N_IMAGES))
    images = ImageData.from_arrays(np.array(["a", "b", "c"]), np.tile(np.arange(N_IMAGES), (3, 1)),
                                   np.vstack([values, values, 1 - values]), np.array(["acc"]),
                                   np.full((1, N_IMAGES), 0.9))
    cells, accs = images.resample(np.array([0, 1, 2]), np.array([0]), 300, np.random.default_rng(0))
    assert np.array_equal(cells[:, 0], cells[:, 1])
    assert np.allclose(cells[:, 0] + cells[:, 2], 1.0)  # the same weights for every cell
    assert cells[:, 0].std() > 0.01 and np.allclose(accs, 0.9)


def test_robustness_pairs_images_when_the_sidecar_is_there(tmp_path) -> None:
    df = keyed_table()
    # Two defenders identical on every image (and in the table): paired draws keep them equal.
    first, second = [d for d in dict.fromkeys(df["defender"]) if d.startswith("dropout")][:2]
    twin, copy_of = df["defender"] == second, df["defender"] == first
    for col in ("asr", "asr_low", "asr_high", "asr_std_error"):
        df.loc[twin, col] = df.loc[copy_of, col].to_numpy()
    images = image_data_for(df)
    table = payoff_table_from_frame(df, "t", images)
    assert table.images is not None
    i, k = table.defender_labels.index(first), table.defender_labels.index(second)
    asr, acc, paired = table_draws(table, 50, np.random.default_rng(0))
    assert paired and np.array_equal(asr[:, i], asr[:, k])
    plain = payoff_table_from_frame(df, "t")
    asr, _, paired = table_draws(plain, 50, np.random.default_rng(0))
    assert not paired and not np.array_equal(asr[:, i], asr[:, k])
    rb = robustness(table, max_accuracy_drop=0.02, samples=20)
    assert rb.paired and "paired bootstrap over test images" in rb.method
    rb = robustness(plain, max_accuracy_drop=0.02, samples=20)
    assert not rb.paired and "no per-image sidecar" in rb.method


def test_read_payoff_csv_attaches_a_matching_sidecar_and_refuses_another_runs(tmp_path) -> None:
    df = keyed_table()
    path = tmp_path / "payoff.csv"
    df.to_csv(path, index=False)
    assert read_payoff_csv(path).images is None
    sidecar_path(path).write_bytes(image_data_for(df).to_bytes())
    table = read_payoff_csv(path)
    assert table.images is not None and table.images_note.startswith("per-image data")
    other = df.copy()
    other["asr"] = np.clip(other["asr"] + 0.05, 0, 1)
    sidecar_path(path).write_bytes(image_data_for(other).to_bytes())
    with pytest.raises(DefdropError, match="from another run"):
        read_payoff_csv(path)
    sidecar_path(path).write_bytes(image_data_for(df[df["defender"] != "none"]).to_bytes())
    with pytest.raises(DefdropError, match="lacks the cell"):
        read_payoff_csv(path)
    # A table without keys cannot be matched: the sidecar is left unused, and the table says why.
    sidecar_path(path).write_bytes(image_data_for(df).to_bytes())
    df.drop(columns=["accuracy_key"]).to_csv(path, index=False)
    table = read_payoff_csv(path)
    assert table.images is None and "accuracy_key" in table.images_note


def test_concat_of_sweeps() -> None:
    df = keyed_table()
    a, b = df.iloc[: len(df) // 2], df.iloc[len(df) // 2:]
    whole = ImageData.concat([image_data_for(a), image_data_for(b)])
    assert whole.cell_key == tuple(df["key"]) and len(whole.accuracy_key) == df["accuracy_key"].nunique()
    payoff_table_from_frame(df, "t", whole)  # matches the whole table
    clash = image_data_for(b)
    clash = ImageData.from_arrays(np.array(clash.cell_key), clash.cell_image, clash.cell_asr,
                                  np.array(clash.accuracy_key), clash.accuracy_correct * 0.5)
    with pytest.raises(DefdropError, match="differs"):
        ImageData.concat([image_data_for(a), clash])


def test_two_cells_at_zero_on_every_image_do_not_give_a_zero_width_difference() -> None:
    """Paired draws that are all equal cannot show uncertainty: the interval comes from the cells' own (exact,
    non-zero) standard errors instead of collapsing to [0, 0]."""
    from gameplay.images import Estimate, difference

    images = ImageData.from_arrays(np.array(["a", "b"]), np.tile(np.arange(3), (2, 1)), np.zeros((2, 3)),
                                   np.array(["acc"]), np.ones((1, 5)))
    se = 0.3  # what an exact interval over 3 images gives at 0%
    iv = difference(Estimate(0.0, se, "a"), Estimate(0.0, se, "b"), images, level=0.95)
    assert not iv.paired and iv.low < -0.5 and iv.high > 0.5 and "paired draws all equal" in iv.method
