"""The seed's example (DESIGN.md section 3) runs verbatim with `import nrt as da`."""

import subprocess
import sys
import textwrap

SEED = textwrap.dedent(
    """
    import nrt as da

    class BAnalysis(da.DataAnalysis):
        version = "newversion"
        def main(self):
            self.data = "data"

    class Analysis(da.DataAnalysis):
        input_b = BAnalysis
        cached = True
        def main(self):
            self.data = self.input_b.data

    A = Analysis(); A.get(); assert A.data == "data"
    print(A.signature)
    """
)


def test_seed_example_runs_verbatim_and_restores_in_a_new_process(tmp_path, isolated_nrt_dirs):
    script = tmp_path / "seed.py"
    script.write_text(SEED)
    first = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    )
    second = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    )
    assert first.stdout == second.stdout
    signature = first.stdout.strip()
    assert len(signature) == 64
    manifest = isolated_nrt_dirs["cache"] / signature[:2] / signature / "manifest.json"
    assert manifest.is_file(), "Analysis is cached = True: its result must be on disk"


def test_element_and_dataanalysis_are_the_same_class():
    import nrt

    assert nrt.Element is nrt.DataAnalysis
