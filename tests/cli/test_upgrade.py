"""``keras-explorer upgrade``: Save as Keras 3 for files Keras 2 wrote (and Keras 3 ones), verified in a fresh
process by plain Keras in safe mode against tf-keras' own outputs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from explorer.cli import main
from explorer.model.files import load_graph
from tests.support.generations import GENERATIONS, MANIFEST, calling, edited_copy

UPGRADED = ["tf_keras_2.21/transfer.h5", "keras_2.12/nested_savedmodel", "tf_keras_2.21/nested.keras",
            "keras_2.12/nested_arch.json", "keras_2.12/sequential.h5", "keras_3.0.5/nested.keras"]

# Both sides in fresh processes: plain Keras (safe mode) on the new file, tf-keras on the old one.
COMPARE = textwrap.dedent("""
    import sys
    import numpy as np
    image = np.random.default_rng(11).uniform(0, 255, (1, 96, 96, 3)).astype("float32")
    if sys.argv[1] == "keras":
        import keras
        model = keras.saving.load_model(sys.argv[2], compile=False, safe_mode=True)
    else:
        import tf_keras
        model = tf_keras.models.load_model(sys.argv[2], compile=False)
    np.save(sys.argv[3], np.asarray(model(image, training=False)))
""")


@pytest.mark.parametrize("name", UPGRADED)
def test_upgrade_writes_a_keras3_file_with_the_same_structure(name, tmp_path, capsys):
    out = tmp_path / "upgraded.keras"
    assert main(["upgrade", str(GENERATIONS / name), "-o", str(out)]) == 0
    assert "verified" in capsys.readouterr().out
    graph = load_graph(out)
    facts = MANIFEST[name.replace("_arch.h5", "_arch.json")]
    assert graph.keras_version.startswith("3.") and not graph.findings and not graph.problems
    assert graph.totals[:2] == (facts["count_params"], facts["trainable_params"])
    assert set(facts["layers"]) <= {node.path for node in graph.nodes}
    assert [p.name for p in tmp_path.iterdir()] == ["upgraded.keras"]  # no partial file left beside it


def test_the_upgraded_transfer_file_computes_what_tf_keras_computes(tmp_path, capsys):
    source = GENERATIONS / "tf_keras_2.21" / "transfer.h5"
    out = tmp_path / "transfer.keras"
    assert main(["upgrade", str(source), "-o", str(out)]) == 0
    results = {}
    for side, path in (("keras", out), ("tf_keras", source)):
        done = subprocess.run([sys.executable, "-c", COMPARE, side, str(path), str(tmp_path / f"{side}.npy")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        results[side] = np.load(tmp_path / f"{side}.npy")
    assert np.max(np.abs(results["keras"] - results["tf_keras"])) <= 1e-5
    with zipfile.ZipFile(out) as archive:
        assert b"explorer" not in archive.read("config.json")  # nothing of ours is needed to load it


def test_an_op_with_no_keras3_equivalent_is_refused_by_name_and_nothing_is_written(tmp_path, capsys):
    source = edited_copy("tf_keras_2.21/nested.h5", tmp_path / "floordiv.h5", calling("math.floordiv"))
    out = tmp_path / "new.keras"
    assert main(["upgrade", str(source), "-o", str(out)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "tf.math.floordiv, which has no Keras 3 equivalent" in error[0], error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["floordiv.h5"]


def test_a_file_with_findings_is_not_upgraded_without_trust(tmp_path, capsys):
    source = edited_copy("tf_keras_2.21/nested.h5", tmp_path / "writes_files.h5", calling("io.write_file"))
    assert main(["upgrade", str(source), "-o", str(tmp_path / "new.keras")]) == 3
    assert "refusing" in capsys.readouterr().err
    assert not (tmp_path / "new.keras").exists()
