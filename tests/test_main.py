"""`python -m fastbp`: the demo, its --plot picture, and what happens without matplotlib."""
import subprocess
import sys

import pytest

from fastbp import __main__ as demo


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    demo.main(["--samples", "300", "--epochs", "3", "--threads", "1", "--plot", str(out)])
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000                     # two panels drawn, not an empty canvas
    assert f"to {out}" in capsys.readouterr().out


def test_plot_without_matplotlib_says_so_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    # a None entry in sys.modules makes `import matplotlib` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    out = tmp_path / "demo.png"
    with pytest.raises(SystemExit) as info:
        demo.main(["--samples", "300", "--epochs", "3", "--plot", str(out)])
    assert info.value.code not in (0, None)
    captured = capsys.readouterr()
    assert "--plot needs matplotlib" in captured.err
    assert "pip install matplotlib" in captured.err
    assert "Training" not in captured.out          # refused before any work
    assert not out.exists()


def test_plot_without_matplotlib_from_the_command_line(tmp_path):
    # the real command, in a fresh interpreter where matplotlib cannot be imported
    code = ("import sys, runpy; sys.modules['matplotlib'] = None; "
            "sys.argv = ['fastbp', '--samples', '200', '--epochs', '2', '--plot', "
            f"{str(tmp_path / 'x.png')!r}]; runpy.run_module('fastbp', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "--plot needs matplotlib" in proc.stderr
